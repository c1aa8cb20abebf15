"""Bearer-token authentication: JWTs verified at the edge against their issuers' JWKS.

The signature is checked by the platform (`cryptography` locally, WebCrypto in Workers) after
this module has fixed the algorithm from the issuer's allow-list and matched the key's type to
it, which closes the `none` and HS256-with-a-public-key confusions. Claims are then checked by
`edge.auth.claims` (see there why not PyJWT).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from edge.auth.claims import ClaimsError, validate_claims
from edge.auth.jose import JoseError, parse_compact
from edge.auth.jwks import JwksCache
from edge.config import EdgeConfig, IssuerSpec
from edge.runtime.base import Platform

log = logging.getLogger("edge.auth")

# alg -> (JWK kty, JWK crv or None)
KEY_TYPES: dict[str, tuple[str, str | None]] = {
    "EdDSA": ("OKP", "Ed25519"),
    "ES256": ("EC", "P-256"),
    "RS256": ("RSA", None),
}
REALM = "outpost"
# Real access tokens are well under 2 KB; anything past this is refused before parsing.
MAX_TOKEN_CHARS = 8192
# `typ` values an access token may carry (RFC 9068 §2.1; plain JWTs may say JWT or nothing).
ACCESS_TOKEN_TYPES = ("jwt", "at+jwt")


class AuthError(Exception):
    """A 401 (`invalid_token` or no token) or 403 (`insufficient_scope`) outcome."""

    def __init__(self, status: int, error: str | None, description: str, scope: str = "") -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description
        self.scope = scope

    def www_authenticate(self) -> str:
        parts = [f'Bearer realm="{REALM}"']
        if self.error:
            parts.append(f'error="{self.error}"')
            parts.append(f'error_description="{self.description}"')
        if self.scope:
            parts.append(f'scope="{self.scope}"')
        return ", ".join(parts)


def _bearer_token(authorization: str) -> str | None:
    """The token of a `Bearer` Authorization header ("" if blank), None for another scheme."""
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _invalid(description: str) -> AuthError:
    return AuthError(401, "invalid_token", description)


@dataclass(slots=True)
class Principal:
    """The verified caller."""

    subject: str
    scopes: frozenset[str]
    issuer: str
    expires_at: float
    not_before: float


class Authenticator:
    """Verifies `Authorization: Bearer` JWTs and checks route scopes."""

    def __init__(self, config: EdgeConfig, platform: Platform) -> None:
        self._platform = platform
        self._leeway = config.leeway_seconds
        self.jwks = {spec.issuer: JwksCache(spec, platform) for spec in config.issuers}
        # token -> Principal; a plain dict so a repeat caller costs one lookup. Bounded: when
        # full, the oldest verification goes first (tokens are short-lived anyway).
        self._verified: dict[str, Principal] = {}
        self._verified_max = max(1, config.token_cache_entries)

    def known(self, authorization: str | None, scope: str) -> Principal | None:
        """The caller if this exact token was verified before, is in date and holds `scope`;
        None otherwise, with nothing changed (`authenticate` then reports what is wrong)."""
        token = _bearer_token(authorization) if authorization else None
        if not token:
            return None
        principal = self._verified.get(token)
        if principal is None or scope not in principal.scopes:
            return None
        now = self._platform.now()
        if now > principal.expires_at + self._leeway or now + self._leeway < principal.not_before:
            return None
        return principal

    async def authenticate(self, authorization: str | None, scope: str) -> Principal:
        """The caller behind the header, if it holds `scope`; raises AuthError otherwise."""
        if not authorization:
            raise AuthError(401, None, "A bearer token is required.", scope)
        token = _bearer_token(authorization)
        if not token:
            raise AuthError(401, "invalid_request", "Use the Bearer authorization scheme.", scope)
        if len(token) > MAX_TOKEN_CHARS:  # bounds parsing work and the verified-token cache
            raise _invalid("The token is too large.")
        principal = self._verified.get(token)
        now = self._platform.now()
        if principal is None:
            principal = await self._verify(token)
            if len(self._verified) >= self._verified_max:
                del self._verified[next(iter(self._verified))]
            self._verified[token] = principal
        elif now > principal.expires_at + self._leeway:
            self._verified.pop(token, None)
            raise _invalid("The token has expired.")
        elif now + self._leeway < principal.not_before:
            raise _invalid("The token is not valid yet.")
        if scope not in principal.scopes:
            raise AuthError(403, "insufficient_scope", f"The token lacks scope '{scope}'.", scope)
        return principal

    async def _verify(self, token: str) -> Principal:
        if token.count(".") != 2:
            raise _invalid("The token is not a JWS compact serialization.")
        try:
            jws = parse_compact(token, ACCESS_TOKEN_TYPES)
        except JoseError:
            raise _invalid("The token is malformed.") from None
        header, payload, signature = jws.header, jws.claims, jws.signature
        cache = self.jwks.get(payload.get("iss")) if isinstance(payload.get("iss"), str) else None
        if cache is None:
            raise _invalid("The token's issuer is not trusted.")
        spec = cache.spec
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in spec.algorithms or alg not in KEY_TYPES:
            raise _invalid("The token's algorithm is not allowed.")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > 256:
            raise _invalid("The token has no key id.")
        jwk = await cache.key(kid)
        if jwk is None:
            raise _invalid("The token's signing key is unknown.")
        kty, crv = KEY_TYPES[alg]
        if (
            jwk.get("kty") != kty
            or (crv is not None and jwk.get("crv") != crv)
            or jwk.get("alg", alg) != alg
            or jwk.get("use", "sig") != "sig"
        ):
            raise _invalid("The token's key does not match its algorithm.")
        try:
            valid = await self._platform.verify_signature(alg, jwk, jws.signing_input, signature)
        except Exception as exc:
            log.warning("signature check error for kid %s: %s", kid, type(exc).__name__)
            valid = False
        if not valid:
            raise _invalid("The token's signature is invalid.")
        claims = self._validate_claims(payload, spec)
        scopes = claims.get("scope", "")
        if isinstance(scopes, str):
            scope_set = frozenset(scopes.split())
        elif isinstance(scopes, list):
            scope_set = frozenset(str(s) for s in scopes)
        else:
            scope_set = frozenset()
        if isinstance(claims.get("scp"), list):
            scope_set |= frozenset(str(s) for s in claims["scp"])
        return Principal(
            subject=str(claims["sub"]),
            scopes=scope_set,
            issuer=spec.issuer,
            expires_at=float(claims["exp"]),
            not_before=float(claims.get("nbf", 0)),
        )

    def _validate_claims(self, payload: dict[str, Any], spec: IssuerSpec) -> dict[str, Any]:
        try:
            validate_claims(
                payload,
                issuer=spec.issuer,
                audience=spec.audience,
                now=self._platform.now(),
                leeway=self._leeway,
            )
        except ClaimsError as exc:
            raise _invalid(str(exc)) from None
        return payload
