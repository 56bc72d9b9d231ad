"""Hosts on one machine: Linux network namespaces joined to a hub by veth pairs on a bridge.

The hub is the root namespace (the test's own processes: API, collector, Redis, Postgres, the
S3 server); its address lives on a bridge of its own in ``10.231.<n>.0/29``, and each host is a
namespace whose only link is a veth pair into that bridge. A host reaches the hub's address and
nothing else (no route, and its loopback is its own), so anything a worker there needs must
come over its link. Only addresses inside the /29 are used. Everything is removed on exit,
also when the test fails; interface names carry this process's id, so sessions do not collide.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

PREFIX = "10.231"


@dataclass
class Host:
    namespace: str
    veth: str  # the hub's end, in the root namespace: `ip link set <veth> down` cuts the host
    address: str

    def argv(self, command: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.namespace, *command]

    def cut(self) -> None:
        ip("link", "set", self.veth, "down")


@dataclass
class Network:
    hub: str  # the hub's address
    bridge: str
    hosts: list[Host] = field(default_factory=list)


def ip(*args: str) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


@contextmanager
def hub_and_hosts(count: int) -> Iterator[Network]:
    subnet = _free_subnet()
    tag = f"mf{os.getpid() % 100000}"
    net = Network(hub=f"{PREFIX}.{subnet}.1", bridge=f"{tag}br")
    try:
        ip("link", "add", net.bridge, "type", "bridge")
        ip("addr", "add", f"{net.hub}/29", "dev", net.bridge)
        ip("link", "set", net.bridge, "up")
        for number in range(1, count + 1):
            net.hosts.append(_add_host(net, f"{tag}h{number}", f"{PREFIX}.{subnet}.{number + 1}"))
        yield net
    finally:
        _remove(net)


def _add_host(net: Network, name: str, address: str) -> Host:
    host = Host(namespace=name, veth=name, address=address)
    ip("netns", "add", name)
    net.hosts.append(host)  # from here on, cleanup must remove it
    ip("link", "add", host.veth, "type", "veth", "peer", "name", f"{name}p")
    ip("link", "set", f"{name}p", "netns", name)
    ip("link", "set", host.veth, "master", net.bridge)
    ip("link", "set", host.veth, "up")
    ip("-n", name, "addr", "add", f"{address}/29", "dev", f"{name}p")
    ip("-n", name, "link", "set", f"{name}p", "up")
    ip("-n", name, "link", "set", "lo", "up")
    net.hosts.pop()
    return host


def _remove(net: Network) -> None:
    for host in net.hosts:
        with suppress(RuntimeError, subprocess.SubprocessError):
            # Only processes this test started live in these namespaces (they were created here).
            for pid in ip("netns", "pids", host.namespace).split():
                with suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
        with suppress(RuntimeError, subprocess.SubprocessError):
            ip("netns", "del", host.namespace)
        with suppress(RuntimeError, subprocess.SubprocessError):
            ip("link", "del", host.veth)  # usually gone with its peer's namespace
    with suppress(RuntimeError, subprocess.SubprocessError):
        ip("link", "del", net.bridge)


def _free_subnet() -> int:
    taken = ip("-o", "-4", "addr", "show")
    for third in range(1 + os.getpid() % 200, 255):
        if f" {PREFIX}.{third}." not in taken:
            return third
    raise RuntimeError(f"no free {PREFIX}.x.0/29 subnet")
