"""App attestation at the edge: Firebase App Check tokens, or any JWKS-verified attestation issuer.

A token is a JWS from a trusted issuer (matched by `iss`), signed with a key of its JWKS, with an
`aud` naming our project and a `sub` naming one of our apps, not expired. Per route class the
check is `off`, `monitor` (verify and count, always allow) or `enforce` (refuse what fails).
Verified tokens are remembered until they expire: an app reuses its token for its lifetime (an
hour by default for App Check), so the signature is checked once per token, not per request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge.auth import jose
from edge.auth.jwks import KeySet
from edge.config import AttestationIssuer, AttestationSettings
from edge.runtime.base import Platform

log = logging.getLogger("edge.attestation")

MAX_TOKEN_CHARS = 8192  # App Check tokens are about 1 KB
# Results, also the `result` label of the attestation metric.
VALID = "valid"
MISSING = "missing"
MALFORMED = "malformed"
UNKNOWN_ISSUER = "unknown_issuer"
UNKNOWN_KEY = "unknown_key"
BAD_SIGNATURE = "bad_signature"
EXPIRED = "expired"
WRONG_AUDIENCE = "wrong_audience"
WRONG_APP = "wrong_app"
UNAVAILABLE = "unavailable"  # the issuer's keys could never be fetched
RESULTS = (
    VALID,
    MISSING,
    MALFORMED,
    UNKNOWN_ISSUER,
    UNKNOWN_KEY,
    BAD_SIGNATURE,
    EXPIRED,
    WRONG_AUDIENCE,
    WRONG_APP,
    UNAVAILABLE,
)
_DETAIL = {
    MISSING: "An app attestation token is required.",
    MALFORMED: "The app attestation token is malformed.",
    UNKNOWN_ISSUER: "The app attestation token's issuer is not trusted.",
    UNKNOWN_KEY: "The app attestation token's signing key is unknown.",
    BAD_SIGNATURE: "The app attestation token's signature is invalid.",
    EXPIRED: "The app attestation token has expired or is not valid yet.",
    WRONG_AUDIENCE: "The app attestation token is for another project.",
    WRONG_APP: "The app attestation token is for another app.",
    UNAVAILABLE: "App attestation cannot be checked right now; retry later.",
}


@dataclass(slots=True)
class Attestation:
    """The outcome for one request. `allowed` is what the route's mode makes of `result`."""

    mode: str
    result: str
    allowed: bool
    app_id: str | None = None

    @property
    def status(self) -> int:
        """The HTTP status to answer with when not allowed (503: the keys are unreachable)."""
        return 503 if self.result == UNAVAILABLE else 401

    @property
    def detail(self) -> str:
        return _DETAIL.get(self.result, "")


@dataclass(slots=True)
class _Verified:
    app_id: str
    expires_at: float


class _Refused(Exception):
    def __init__(self, result: str) -> None:
        super().__init__(result)
        self.result = result


class AttestationVerifier:
    """Checks the attestation header of requests, per the route class's mode.

    `count(route_class, mode, result)` is called once per checked request (not for `off`): the
    edge turns it into `outpost_edge_attestation_total`.
    """

    def __init__(
        self,
        settings: AttestationSettings,
        platform: Platform,
        *,
        leeway: float = 30.0,
        count: Callable[[str, str, str], None] | None = None,
    ) -> None:
        self.settings = settings
        self._platform = platform
        self._leeway = leeway
        self._count = count
        self._issuers = {i.issuer: i for i in settings.issuers}
        self._keys = {
            i.issuer: KeySet(
                platform,
                issuer=i.issuer,
                jwks_url=i.jwks_url,
                ttl=i.jwks_ttl_seconds,
                min_refresh_interval=i.refresh_min_interval_seconds,
            )
            for i in settings.issuers
        }
        self._verified: dict[str, _Verified] = {}
        self._verified_max = max(1, settings.token_cache_entries)

    def mode_for(self, route_class: str) -> str:
        return self.settings.mode_for(route_class)

    def check_known(self, route_class: str, token: str | None) -> Attestation | None:
        """The outcome when it needs no I/O (mode off, no token, a token verified before), for
        a path that cannot await (a cache hit); None when `check` must run."""
        mode = self.mode_for(route_class)
        if mode == "off":
            return Attestation(mode, VALID, True)
        if token and token not in self._verified:
            return None
        return self._finish(route_class, mode, self._known(token))

    def _known(self, token: str | None) -> str | tuple[str, str]:
        """`_verify` without I/O: (VALID, app id), or a refusal, for a missing or known token."""
        try:
            if not token:
                raise _Refused(MISSING)
            return VALID, self._remembered(token)
        except _Refused as refused:
            return refused.result

    def _finish(self, route_class: str, mode: str, outcome: str | tuple[str, str]) -> Attestation:
        result, app_id = outcome if isinstance(outcome, tuple) else (outcome, None)
        if self._count is not None:
            self._count(route_class, mode, result)
        if result != VALID and mode == "monitor":
            log.debug("attestation %s on %s (monitor mode: allowed)", result, route_class)
        return Attestation(mode, result, result == VALID or mode == "monitor", app_id)

    async def check(self, route_class: str, token: str | None) -> Attestation:
        """The attestation outcome of a request of `route_class` carrying header value `token`."""
        mode = self.mode_for(route_class)
        if mode == "off":
            return Attestation(mode, VALID, True)
        try:
            outcome: str | tuple[str, str] = (VALID, await self._verify(token))
        except _Refused as refused:
            outcome = refused.result
        return self._finish(route_class, mode, outcome)

    def _remembered(self, token: str) -> str:
        """The app id of a token verified before, while it is valid; raises _Refused(EXPIRED)."""
        known = self._verified[token]
        if self._platform.now() < known.expires_at + self._leeway:
            return known.app_id
        del self._verified[token]
        raise _Refused(EXPIRED)

    async def _verify(self, token: str | None) -> str:
        if not token:
            raise _Refused(MISSING)
        if token in self._verified:
            return self._remembered(token)
        now = self._platform.now()
        try:
            parsed = jose.parse_compact(token, ("jwt",), MAX_TOKEN_CHARS)
        except jose.JoseError:
            raise _Refused(MALFORMED) from None
        claims = parsed.claims
        iss = claims.get("iss")
        issuer = self._issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise _Refused(UNKNOWN_ISSUER)
        await self._check_signature(issuer, parsed)
        app_id, expires_at = self._check_claims(issuer, claims, now)
        if len(self._verified) >= self._verified_max:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = _Verified(app_id, expires_at)
        return app_id

    async def _check_signature(self, issuer: AttestationIssuer, parsed: jose.CompactJws) -> None:
        header = parsed.header
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in issuer.algorithms:
            raise _Refused(MALFORMED)
        if issuer.typ and header.get("typ") != issuer.typ:
            raise _Refused(MALFORMED)
        if not isinstance(kid, str) or not kid or "crit" in header:
            raise _Refused(MALFORMED)
        keys = self._keys[issuer.issuer]
        jwk = await keys.key(kid)
        if jwk is None:
            raise _Refused(UNKNOWN_KEY if keys.loaded else UNAVAILABLE)
        if not jose.key_fits(alg, jwk):
            raise _Refused(BAD_SIGNATURE)
        if not await jose.verify(self._platform, alg, jwk, parsed.signing_input, parsed.signature):
            raise _Refused(BAD_SIGNATURE)

    def _check_claims(
        self, issuer: AttestationIssuer, claims: dict[str, Any], now: float
    ) -> tuple[str, float]:
        exp, iat = claims.get("exp"), claims.get("iat", 0)
        for value in (exp, iat):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _Refused(MALFORMED)
        if now >= exp + self._leeway or iat > now + self._leeway:
            raise _Refused(EXPIRED)
        nbf = claims.get("nbf")
        if isinstance(nbf, int | float) and not isinstance(nbf, bool) and nbf > now + self._leeway:
            raise _Refused(EXPIRED)
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if not any(a in issuer.audiences for a in audiences if isinstance(a, str)):
            raise _Refused(WRONG_AUDIENCE)
        sub = claims.get("sub")
        if not isinstance(sub, str) or sub not in issuer.app_ids:
            raise _Refused(WRONG_APP)
        return sub, float(exp)
