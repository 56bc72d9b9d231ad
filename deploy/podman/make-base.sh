#!/usr/bin/env bash
# A base image made on this machine, for hosts that reach Debian's mirror and PyPI but no
# container registry (the Dockerfile's python:3.11-slim, redis and postgres images are then out
# of reach). Debian bookworm (Python 3.11) from debootstrap, imported with `podman import`; it
# also carries Debian's redis-server and PostgreSQL 15, so the same image stands in for the
# compose file's redis and postgres services (compose.standins.yml). Needs root, debootstrap
# and podman.   Usage: deploy/podman/make-base.sh [TAG]
set -euo pipefail
TAG=${1:-localhost/medflow-base:bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
work=$(mktemp -d /var/tmp/medflow-base.XXXXXX)
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"

debootstrap --variant=minbase \
    --include=python3,python3-venv,python-is-python3,ca-certificates,passwd \
    bookworm "$root" "$MIRROR"
# Packages' own services must not start in the chroot (the host may run Redis and Postgres on
# their standard ports), and the postgres stand-in makes its own cluster on its volume.
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d" && chmod +x "$root/usr/sbin/policy-rc.d"
mkdir -p "$root/etc/postgresql-common/createcluster.d"
echo "create_main_cluster = false" > "$root/etc/postgresql-common/createcluster.d/no-main.conf"
chroot "$root" apt-get install -y -qq --no-install-recommends \
    redis-server redis-tools postgresql postgresql-client >/dev/null
# The host's own certificate authorities (a TLS-inspecting proxy's, a hospital's internal CA),
# so that pip and apt inside builds trust what the host trusts.
LOCAL_CAS=${LOCAL_CAS:-/usr/local/share/ca-certificates}
if compgen -G "$LOCAL_CAS/*.crt" >/dev/null; then
    cp "$LOCAL_CAS"/*.crt "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates >/dev/null
fi
chroot "$root" apt-get clean
rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/apt/"*.bin

tar -C "$root" --numeric-owner -c . | podman import \
    --change 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["/bin/bash"]' - "$TAG"
podman image inspect --format '{{.Id}} {{.Size}}' "$TAG"
