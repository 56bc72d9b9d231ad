#!/usr/bin/env bash
# The compose stack under podman, from nothing but Debian's mirror and PyPI, to a completed job:
# base image (make-base.sh), MedFlow's image and the postgres stand-in, fresh secrets, the stack
# up, an admin key, a job of generated X-rays submitted from the host's CLI and waited for, the
# audit chain verified, the stack down (KEEP=1 leaves it up). Run from the repository root as
# root, after `make install` (the host's medflow CLI submits):   deploy/podman/recipe.sh [COUNT]
set -euo pipefail
COUNT=${1:-40}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/deploy/podman/containers.conf}
BASE=localhost/medflow-base:bookworm
COMPOSE=(.venv/bin/podman-compose -p medflow-recipe -f docker-compose.yml -f deploy/podman/compose.standins.yml)
state=var/podman-recipe
mkdir -p "$state"
step() { printf '\n== %s (%ss)\n' "$1" "$SECONDS"; }
# The project's containers, volumes and network, by compose's labels (no variables needed):
# a run starts from nothing and, unless KEEP=1, leaves nothing, whether it passes or fails.
remove_stack() {
    local project=label=io.podman.compose.project=medflow-recipe
    podman ps -aq --filter "$project" | xargs -r podman rm -f >/dev/null 2>&1 || true
    podman volume ls -q --filter "$project" | xargs -r podman volume rm -f >/dev/null || true
    podman network rm -f medflow-recipe_default >/dev/null 2>&1 || true
}
remove_stack
[ "${KEEP:-0}" = 1 ] || trap remove_stack EXIT

step "base image"
podman image exists "$BASE" || deploy/podman/make-base.sh "$BASE"
step "images"
# docker format: OCI images have no HEALTHCHECK, and compose's health conditions need it.
make image ENGINE=podman BASE="$BASE" BUILD_FLAGS="--format docker"
podman build --format docker -f deploy/podman/postgres-standin.Containerfile \
    -t localhost/medflow-postgres:standin .

step "secrets"
hex() { .venv/bin/python -c "import secrets, sys; print(secrets.token_hex(int(sys.argv[1])))" "$1"; }
rm -f "$state/anchor.pem"
verify_key=$(.venv/bin/medflow audit keygen "$state/anchor.pem")  # prints the public key
chmod 644 "$state/anchor.pem"  # read by user 10001 in the collector container (a compose secret)
export MEDFLOW_SECRET_KEY=$(hex 32) MEDFLOW_RESULTS_KEY=$(hex 32) POSTGRES_PASSWORD=$(hex 16) \
    POSTGRES_APP_PASSWORD=$(hex 16) REDIS_PASSWORD=$(hex 16) FLOWER_BASIC_AUTH=admin:$(hex 12) \
    MEDFLOW_ANCHOR_VERIFY_KEY="$verify_key" MEDFLOW_ANCHOR_KEY_FILE="$state/anchor.pem"
export MEDFLOW_ALLOW_NONCLINICAL_MODELS=1  # the bundled models are demo models

step "stack up"
# podman 4.3 (Debian 12) ignores depends_on's service_healthy and, with no systemd, runs no
# health check on its own: start in the compose file's order and run its checks ourselves.
wait_healthy() {
    for _ in $(seq 90); do
        podman healthcheck run "medflow-recipe_$1_1" >/dev/null 2>&1 && return 0
        sleep 2
    done
    echo "$1 never became healthy" >&2
    return 1
}
"${COMPOSE[@]}" up -d --no-deps redis postgres
wait_healthy redis && wait_healthy postgres
"${COMPOSE[@]}" up -d --no-deps migrate
[ "$(podman wait medflow-recipe_migrate_1)" = 0 ] || { podman logs medflow-recipe_migrate_1; exit 1; }
"${COMPOSE[@]}" up -d --no-deps api collector beat worker-nodule worker-densenet flower
wait_healthy api
for _ in $(seq 30); do curl -fsS http://127.0.0.1:8000/readyz && break; sleep 1; done; echo
token=$("${COMPOSE[@]}" exec -T api medflow keys create recipe --role admin 2>/dev/null | tail -n 1)
[ -n "$token" ] || { echo "no API key was created" >&2; exit 1; }

step "job of $COUNT images"
[ -d "$state/images" ] || .venv/bin/python -m bench.generate --count "$COUNT" --seed 7 "$state/images"
MEDFLOW_URL=http://127.0.0.1:8000 MEDFLOW_API_KEY=$token \
    .venv/bin/medflow submit "$state/images" --model nodule-detector --wait --out "$state/results.csv"
MEDFLOW_URL=http://127.0.0.1:8000 MEDFLOW_API_KEY=$token .venv/bin/medflow status
curl -fsS -H "Authorization: Bearer $token" http://127.0.0.1:8000/v1/audit/verify && echo
"${COMPOSE[@]}" ps

step "done"
