"""Reaching the local stack from a phone: the machine's LAN address and a terminal QR code.

`outpost up --lan` binds the edge to every interface and advertises `http://<LAN address>:<port>`;
a phone on the same network scans the QR code or types the URL.
"""

from __future__ import annotations

import ipaddress
import socket

from rich.text import Text

WILDCARDS = frozenset({"0.0.0.0", "::", ""})
# Any routable address works: connecting a UDP socket only asks the kernel for a route (and so
# for the source address it would use); no packet is sent.
_PROBE = ("198.51.100.1", 9)  # TEST-NET-2 (RFC 5737): never a real host


def is_wildcard(host: str) -> bool:
    """True for the "every interface" bind addresses."""
    return host in WILDCARDS


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def lan_address() -> str | None:
    """The IPv4 address this machine uses on its network (the source of its default route).

    Falls back to a non-loopback address of the host name; None when there is none (no network).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(_PROBE)
            address = sock.getsockname()[0]
        except OSError:
            address = None
    if address and not is_loopback(address) and address != "0.0.0.0":
        return address
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except OSError:
        return None
    for *_, sockaddr in infos:
        candidate = str(sockaddr[0])
        if not is_loopback(candidate) and _is_local(candidate):
            return candidate
    return None


def _is_local(address: str) -> bool:
    """True when an interface here has `address` (a name in /etc/hosts may be stale)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((address, 0))
        except OSError:
            return False
    return True


# Two QR modules per character cell, top and bottom: (top dark, bottom dark) -> glyph.
_HALF_BLOCKS = {(True, True): "█", (True, False): "▀", (False, True): "▄", (False, False): " "}


def qr_text(data: str) -> Text:
    """`data` as a QR code drawn with half blocks, dark modules on light, for any terminal theme."""
    import qrcode

    qr = qrcode.QRCode(border=2, error_correction=qrcode.constants.ERROR_CORRECT_M)
    qr.add_data(data)
    matrix = qr.get_matrix()
    if len(matrix) % 2:
        matrix.append([False] * len(matrix[0]))
    text = Text()
    for top, bottom in zip(matrix[0::2], matrix[1::2], strict=True):
        line = "".join(_HALF_BLOCKS[(t, b)] for t, b in zip(top, bottom, strict=True))
        text.append(line, style="black on white")
        text.append("\n")
    return text


def qr_matrix_from_text(drawn: str) -> list[list[bool]]:
    """The module matrix a `qr_text` drawing shows (the inverse of the drawing, for tests)."""
    glyphs = {glyph: pair for pair, glyph in _HALF_BLOCKS.items()}
    rows: list[list[bool]] = []
    for line in drawn.splitlines():
        pairs = [glyphs[c] for c in line]
        rows.append([top for top, _ in pairs])
        rows.append([bottom for _, bottom in pairs])
    return rows
