"""DPoP (RFC 9449) at the edge: a device-bound access token is useless without the device's key.

Tokens the origin issues to devices carry `cnf.jkt`, the RFC 7638 thumbprint of the device's
public key. Such a token must come as `Authorization: DPoP <token>` with a `DPoP` header holding a
fresh proof: a JWT signed by that key, naming this request's method (`htm`) and URL (`htu`), the
token's hash (`ath`), its creation time (`iat`) and a unique id (`jti`). `DpopVerifier` checks all
of that; the access token itself is verified before, by the edge's authenticator.

Cost: the proof's header (its key) is the same on every request of a device, so its parsing and
thumbprint are remembered; what is left per request is one small JSON payload, two hashes and the
signature check (the platform's: `cryptography` locally, WebCrypto in Workers).

Replay: a proof is accepted once per process (or Worker isolate) within its time window. Replicas
that share a quota store (Redis, or the Workers' Durable Objects) also refuse a proof another
replica accepted: its id (`once`) goes into the same call that charges the request's quotas, so
the check costs no extra round trip, and is kept only when the request is charged. Without a
shared store (memory quotas), while it is down, or for a proof whose request its quotas refused,
another replica could accept the same proof once more within its window; `ath` ties a proof to
one access token and `htm`/`htu` to one endpoint, so such a replay can only repeat that call,
while the token (15 minutes) and the proof (`max_age_seconds`) are both young.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from edge.auth import jose
from edge.config import DpopSettings
from edge.limits.quota import Once
from edge.runtime.base import Platform

REPLAYED = "The DPoP proof was already used."
REPLICA_CLOCK_SLACK = 5.0  # seconds a proof id outlives its proof in a store shared by replicas
MAX_PROOF_CHARS = 4096  # an ES256 proof is about 600 characters
MAX_JTI_CHARS = 128
_DEFAULT_PORTS = {"http": "80", "https": "443"}
_CACHE_MAX = 10_000  # parsed proof headers, normalised URLs


class DpopError(Exception):
    """A refused request: 401 with a `WWW-Authenticate: DPoP` challenge (RFC 9449 section 7.1).

    `error` is `invalid_dpop_proof` (the proof is missing, malformed, stale, replayed, for another
    request, or its signature fails) or `invalid_token` (the token and the proof do not belong
    together: another key, or the wrong authorization scheme for the token).
    """

    def __init__(self, error: str, description: str, status: int = 401) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status

    def www_authenticate(self, algorithms: tuple[str, ...]) -> str:
        return challenge(algorithms, self.error, self.description)


def challenge(algorithms: tuple[str, ...], error: str = "", description: str = "") -> str:
    """A `WWW-Authenticate` value for the DPoP scheme (descriptions never hold client input)."""
    parts = ["DPoP"]
    if error:
        parts.append(f'error="{error}", error_description="{description}",')
    parts.append(f'algs="{" ".join(algorithms)}"')
    return " ".join(parts)


def _proof_error(description: str) -> DpopError:
    return DpopError("invalid_dpop_proof", description)


def normalize_url(url: str) -> str | None:
    """`scheme://host[:port]/path` as RFC 3986 section 6.2.2-6.2.3 compares them: scheme and host
    in lower case, the default port dropped, an empty path as `/`, the path percent-decoded (the
    edge sees decoded paths), query and fragment ignored. None when it is not an http(s) URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    if port is not None and str(port) != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    return f"{scheme}://{host}{unquote(parts.path) or '/'}"


def request_url(scheme: str, host: str, path: str, public_url: str = "") -> str:
    """The URL a request was sent to, as its proof's `htu` should name it: `public_url` (when
    set) or `scheme://host`, then the request's (decoded) path."""
    base = public_url.rstrip("/") if public_url else f"{scheme}://{host}"
    return base + path


@dataclass(slots=True)
class Proof:
    """A verified proof: the key it was signed with (`jkt`) and its id."""

    jkt: str
    jti: str
    iat: float


@dataclass(slots=True)
class _Header:
    alg: str
    jwk: dict[str, Any]
    jkt: str


class ReplayCache:
    """Proof ids seen within their time window, oldest first; bounded (when full of live ids the
    oldest is dropped and counted in `evicted_live`)."""

    def __init__(self, max_entries: int) -> None:
        self._max = max(1, max_entries)
        self._seen: dict[str, float] = {}
        self.evicted_live = 0

    def __len__(self) -> int:
        return len(self._seen)

    def seen(self, key: str) -> bool:
        return key in self._seen

    def add(self, key: str, expires: float, now: float) -> None:
        seen = self._seen
        while seen:
            oldest = next(iter(seen))
            if seen[oldest] > now and len(seen) < self._max:
                break
            if seen.pop(oldest) > now:
                self.evicted_live += 1
        seen[key] = expires


class DpopVerifier:
    """Checks the proof that goes with each request, as RFC 9449 sections 4.3 and 7.1 list."""

    def __init__(self, settings: DpopSettings, platform: Platform) -> None:
        self.settings = settings
        self._platform = platform
        self._algorithms = frozenset(settings.algorithms)
        self._headers: dict[str, _Header | str] = {}
        self._urls: dict[str, str | None] = {}
        self._ath: dict[str, str] = {}
        self.replays = ReplayCache(settings.replay_cache_entries)

    def once(self, proof: Proof) -> Once:
        """The proof's id as the fleet's replay check keeps it (`edge.limits.quota.Once`): for
        as long as any replica could still accept the proof, with replicas' clocks up to
        `REPLICA_CLOCK_SLACK` / 2 apart."""
        s = self.settings
        seconds = s.max_age_seconds + s.clock_skew_seconds + REPLICA_CLOCK_SLACK
        return Once(f"dpop|{proof.jkt}|{proof.jti}", seconds)

    def challenge(self) -> str:
        """The challenge for a request that brought no credentials."""
        return challenge(self.settings.algorithms)

    def error_header(self, err: DpopError) -> str:
        return err.www_authenticate(self.settings.algorithms)

    async def check_request(
        self,
        *,
        scheme: str,
        access_token: str,
        token_jkt: str | None,
        proof: str | None,
        method: str,
        url: str,
        route_class: str,
    ) -> Proof | None:
        """Whether an already verified access token may be used on this request.

        `scheme` is what `parse_authorization` returned, `token_jkt` the token's `cnf.jkt` (None
        for an unbound token), `proof` the `DPoP` header, `url` the request's URL (see
        `request_url`). Returns the proof for a bound token, None for an allowed Bearer token;
        raises DpopError otherwise.
        """
        if token_jkt is None:
            if scheme == "dpop":
                raise DpopError("invalid_token", "The token is not bound to a DPoP key.")
            if route_class in self.settings.require_for:
                raise DpopError("invalid_token", "This route needs a DPoP-bound token.")
            return None
        if scheme != "dpop":
            raise DpopError("invalid_token", "A DPoP-bound token must use the DPoP scheme.")
        return await self.verify(
            proof, method=method, url=url, access_token=access_token, jkt=token_jkt
        )

    async def verify(
        self,
        proof: str | None,
        *,
        method: str,
        url: str,
        access_token: str | None = None,
        jkt: str | None = None,
    ) -> Proof:
        """Check one proof for a request to `method url`; with `access_token`, its `ath` must
        hash that token, and with `jkt`, its key must be that one. Raises DpopError."""
        if not proof:
            raise _proof_error("A DPoP proof is required.")
        if "," in proof or " " in proof:  # two headers joined, or junk
            raise _proof_error("Send exactly one DPoP proof.")
        try:
            h, p, s = jose.split(proof, MAX_PROOF_CHARS)
        except jose.JoseError as exc:
            raise _proof_error(f"The DPoP proof is malformed ({exc}).") from None
        header = self._header(h)
        if jkt is not None and header.jkt != jkt:
            raise DpopError("invalid_token", "Invalid DPoP key binding.")
        try:
            claims = jose.segment_object(p)
            signature = jose.b64url_decode(s)
        except jose.JoseError as exc:
            raise _proof_error(f"The DPoP proof is malformed ({exc}).") from None
        jti, iat = self._check_claims(claims, method, url, access_token)
        key = f"{header.jkt}:{jti}"
        if self.replays.seen(key):
            raise _proof_error(REPLAYED)
        signing_input = f"{h}.{p}".encode("ascii")
        if not await jose.verify(self._platform, header.alg, header.jwk, signing_input, signature):
            raise _proof_error("The DPoP proof's signature is invalid.")
        if self.replays.seen(key):  # the same proof, checked concurrently (WebCrypto awaits)
            raise _proof_error(REPLAYED)
        self.replays.add(key, iat + self.settings.max_age_seconds + 1, self._platform.now())
        return Proof(header.jkt, jti, iat)

    def _header(self, segment: str) -> _Header:
        cached = self._headers.get(segment)
        if cached is None:
            cached = self._parse_header(segment)
            if len(self._headers) >= _CACHE_MAX:
                self._headers.clear()
            self._headers[segment] = cached
        if isinstance(cached, str):
            raise _proof_error(cached)
        return cached

    def _parse_header(self, segment: str) -> _Header | str:
        """The proof header's algorithm, key and thumbprint, or why it is refused."""
        try:
            header = jose.segment_object(segment)
        except jose.JoseError as exc:
            return f"The DPoP proof is malformed ({exc})."
        if header.get("typ") != "dpop+jwt":
            return "The DPoP proof's typ must be dpop+jwt."
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            return "The DPoP proof's algorithm is not accepted."
        jwk = header.get("jwk")
        if not isinstance(jwk, Mapping) or not jose.key_fits(alg, jwk):
            return "The DPoP proof's jwk is not a public key for its algorithm."
        if "crit" in header:  # no extension is understood, so none may be critical
            return "The DPoP proof has critical header parameters."
        public = {m: jwk[m] for m in jose.THUMBPRINT_MEMBERS[jwk["kty"]]}
        return _Header(alg, public, jose.thumbprint(public))

    def _normalized(self, url: str) -> str | None:
        found = self._urls.get(url, "")
        if found == "":
            found = normalize_url(url)
            if len(self._urls) >= _CACHE_MAX:
                self._urls.clear()
            self._urls[url] = found
        return found

    def _check_claims(
        self, claims: dict[str, Any], method: str, url: str, access_token: str | None
    ) -> tuple[str, float]:
        jti = claims.get("jti")
        if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_CHARS:
            raise _proof_error("The DPoP proof needs a jti of 1-128 characters.")
        if claims.get("htm") != method:
            raise _proof_error("The DPoP proof is for another HTTP method.")
        htu = claims.get("htu")
        if not isinstance(htu, str) or len(htu) > 2048:
            raise _proof_error("The DPoP proof needs an htu.")
        expected = self._normalized(url)
        if expected is None or self._normalized(htu) != expected:
            raise _proof_error("The DPoP proof is for another URL.")
        iat = claims.get("iat")
        if isinstance(iat, bool) or not isinstance(iat, int | float):
            raise _proof_error("The DPoP proof needs a numeric iat.")
        now = self._platform.now()
        if iat > now + self.settings.clock_skew_seconds:
            raise _proof_error("The DPoP proof's iat is in the future (check the device clock).")
        if iat < now - self.settings.max_age_seconds:
            raise _proof_error("The DPoP proof is too old (check the device clock).")
        if access_token is not None:
            ath = self._ath.get(access_token)
            if ath is None:  # a token serves many requests: hash it once
                ath = jose.b64url(hashlib.sha256(access_token.encode("ascii", "replace")).digest())
                if len(self._ath) >= _CACHE_MAX:
                    self._ath.clear()
                self._ath[access_token] = ath
            if claims.get("ath") != ath:
                raise _proof_error("The DPoP proof's ath does not match the access token.")
        return jti, float(iat)
