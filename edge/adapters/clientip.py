"""Which address is the client: the peer, or X-Forwarded-For when the peer is a trusted proxy."""

from __future__ import annotations

import ipaddress


class TrustedProxies:
    def __init__(self, cidrs: tuple[str, ...]) -> None:
        self._nets = [ipaddress.ip_network(c, strict=False) for c in cidrs]

    def trusts(self, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(addr in net for net in self._nets)

    def client_ip(self, peer: str, forwarded_for: str | None) -> str:
        """Walk X-Forwarded-For right to left past trusted hops; never trust an untrusted peer."""
        if not forwarded_for or not self._nets or not self.trusts(peer):
            return peer
        hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
        for hop in reversed(hops):
            if not self.trusts(hop):
                return hop
        return hops[0] if hops else peer
