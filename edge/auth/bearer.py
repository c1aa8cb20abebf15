"""Access tokens: JWTs verified at the edge against their issuers' JWKS.

The signature is checked by the platform (`cryptography` locally, WebCrypto in Workers) after
this module has fixed the algorithm from the issuer's allow-list and matched the key's type to
it, which closes the `none` and HS256-with-a-public-key confusions. Claims are then checked by
`edge.auth.claims` (see there why not PyJWT). A token comes as `Authorization: Bearer <jwt>`,
or as `DPoP <jwt>` when it is bound to a device key (`cnf.jkt`): such a token also needs a fresh
proof from that key on every request (`edge.auth.dpop`), so it is never answered from the
verified-token cache alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from edge.auth.claims import ClaimsError, validate_claims
from edge.auth.jose import KEY_TYPES, JoseError, key_fits, parse_compact
from edge.auth.jwks import KeySet
from edge.config import EdgeConfig, IssuerSpec
from edge.runtime.base import Platform

log = logging.getLogger("edge.auth")

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


def credentials(authorization: str) -> tuple[str, str] | None:
    """(`bearer` or `dpop`, token) of an Authorization header (the token "" if blank), None for
    another scheme. Scheme names are case-insensitive (RFC 9110 §11.1)."""
    scheme, _, token = authorization.partition(" ")
    scheme = scheme.lower()
    return (scheme, token.strip()) if scheme in ("bearer", "dpop") else None


def _invalid(description: str) -> AuthError:
    return AuthError(401, "invalid_token", description)


def bound_key(claims: dict[str, Any]) -> str | None:
    """The key a token is bound to (`cnf.jkt`, RFC 9449 §6.1); None for an unbound token. A
    `cnf` that is there but malformed is refused, never read as unbound."""
    cnf = claims.get("cnf")
    if cnf is None:
        return None
    jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
    if not isinstance(jkt, str) or not 0 < len(jkt) <= 128:
        raise _invalid("The token's cnf claim is malformed.")
    return jkt


@dataclass(slots=True)
class Principal:
    """The verified caller."""

    subject: str
    scopes: frozenset[str]
    issuer: str
    expires_at: float
    not_before: float
    app: str = ""  # the app (OAuth client) the token was issued to, when it says
    jkt: str | None = None  # the device key the token is bound to (RFC 9449 `cnf.jkt`)


class Authenticator:
    """Verifies access tokens and checks route scopes."""

    def __init__(self, config: EdgeConfig, platform: Platform) -> None:
        self._platform = platform
        self._leeway = config.leeway_seconds
        self.jwks = {
            spec.issuer: KeySet(
                platform,
                issuer=spec.issuer,
                jwks_url=spec.jwks_url,
                ttl=spec.jwks_ttl_seconds,
                min_refresh_interval=spec.refresh_min_interval_seconds,
            )
            for spec in config.issuers
        }
        self._specs = {spec.issuer: spec for spec in config.issuers}
        # token -> Principal; a plain dict so a repeat caller costs one lookup. Bounded: when
        # full, the oldest verification goes first (tokens are short-lived anyway).
        self._verified: dict[str, Principal] = {}
        self._verified_max = max(1, config.token_cache_entries)

    def known(self, authorization: str | None, scope: str) -> Principal | None:
        """The caller if this exact token was verified before, is in date, holds `scope` and
        needs no proof of a device key; None otherwise, with nothing changed (`authenticate`
        then reports what is wrong)."""
        found = credentials(authorization) if authorization else None
        if found is None or found[0] != "bearer" or not found[1]:
            return None
        principal = self._verified.get(found[1])
        if principal is None or principal.jkt is not None or scope not in principal.scopes:
            return None
        now = self._platform.now()
        if now > principal.expires_at + self._leeway or now + self._leeway < principal.not_before:
            return None
        return principal

    async def authenticate(self, authorization: str | None, scope: str) -> Principal:
        """The caller behind the header, if it holds `scope`; raises AuthError otherwise."""
        if not authorization:
            raise AuthError(401, None, "A bearer token is required.", scope)
        found = credentials(authorization)
        if found is None or not found[1]:
            raise AuthError(401, "invalid_request", "Use the Bearer authorization scheme.", scope)
        token = found[1]
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
        iss = payload.get("iss")
        keys = self.jwks.get(iss) if isinstance(iss, str) else None
        if keys is None:
            raise _invalid("The token's issuer is not trusted.")
        spec = self._specs[keys.issuer]
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in spec.algorithms or alg not in KEY_TYPES:
            raise _invalid("The token's algorithm is not allowed.")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > 256:
            raise _invalid("The token has no key id.")
        jwk = await keys.key(kid)
        if jwk is None:
            raise _invalid("The token's signing key is unknown.")
        if not key_fits(alg, jwk):
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
        app = claims.get("client_id", claims.get("azp", ""))
        return Principal(
            subject=str(claims["sub"]),
            scopes=scope_set,
            issuer=spec.issuer,
            expires_at=float(claims["exp"]),
            not_before=float(claims.get("nbf", 0)),
            app=app if isinstance(app, str) and len(app) <= 128 else "",
            jkt=bound_key(claims),
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
