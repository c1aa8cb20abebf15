"""Test hosts in Linux network namespaces: a "LAN" made of a veth pair between two namespaces.

Nothing here touches the machine's own interfaces: each namespace has its own loopback, and the
veth pair joins only the two namespaces, on a benchmarking range (198.18.0.0/15, RFC 2544) that
no real network uses. Needs root and iproute2 (`ip netns`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

SERVER_IP = "198.18.0.1"
PHONE_IP = "198.18.0.2"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=20)


def available() -> str | None:
    """None when namespaces can be made here, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root)"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed (apt-get install iproute2)"
    return None


@dataclass(frozen=True)
class Lan:
    """Two hosts on one link: `server` (SERVER_IP, default route via the phone) and `phone`."""

    server: str
    phone: str

    def run_in(self, namespace: str, argv: Sequence[str]) -> list[str]:
        """`argv` run inside `namespace` (for subprocess)."""
        return ["ip", "netns", "exec", namespace, *argv]


@contextmanager
def namespace(name: str) -> Iterator[str]:
    """An empty namespace with only its loopback up; deleted afterwards."""
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "link", "set", "lo", "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)


@contextmanager
def lan(prefix: str) -> Iterator[Lan]:
    """Server and phone namespaces joined by a veth pair (names unique per process)."""
    tag = f"{prefix}{os.getpid() % 100000}"
    server, phone = f"{tag}-srv", f"{tag}-ph"
    with namespace(server), namespace(phone):
        a, b = f"{tag}a", f"{tag}b"  # interface names: at most 15 characters
        _ip("link", "add", a, "type", "veth", "peer", "name", b)
        _ip("link", "set", a, "netns", server)
        _ip("link", "set", b, "netns", phone)
        _ip("-n", server, "addr", "add", f"{SERVER_IP}/24", "dev", a)
        _ip("-n", phone, "addr", "add", f"{PHONE_IP}/24", "dev", b)
        _ip("-n", server, "link", "set", a, "up")
        _ip("-n", phone, "link", "set", b, "up")
        # As on a home network, the server's default route leaves through its LAN interface:
        # that is the address `outpost up --lan` detects and advertises.
        _ip("-n", server, "route", "add", "default", "via", PHONE_IP)
        yield Lan(server, phone)
