"""App attestation at registration: Firebase App Check or any JWKS-verified issuer, per app.

Each app (its record in Vault KV, set by `outpost apps create`) says `off`, `monitor` (check,
count, register anyway) or `enforce` (refuse what fails), and which attested app ids (the
token's `sub`) it accepts. Tokens are verified with PyJWT against the issuer's JWKS: fetched
through `PyJWKClient`, cached for `attestation_jwks_ttl`, refetched for an unknown `kid` at most
every 30 s (PyJWKClient's cooldown) so made-up key ids cannot turn into requests to Google.

The local attestation issuer stands in, in development, for the providers App Check wraps (Play
Integrity, App Attest): like Firebase's debug provider it vouches for whoever holds the app's
key. Its RSA key lives in Vault transit (`outpost-attest`), so its tokens are real RS256 JWTs
and take the same path as Firebase's.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import jwt

from origin.identity.jwks import JwksCache
from origin.identity.settings import IdentitySettings
from origin.identity.signer import TransitJwtSigner
from origin.secrets.client import VaultClient

log = logging.getLogger("outpost.origin.attestation")

MODES = ("off", "monitor", "enforce")
FIREBASE_ISSUER = "https://firebaseappcheck.googleapis.com/"
LOCAL_AUDIENCE = "projects/outpost-local"
LOCAL_TRANSIT_KEY = "outpost-attest"
MAX_TOKEN_CHARS = 8192

VALID = "valid"
MISSING = "missing"
MALFORMED = "malformed"
UNKNOWN_ISSUER = "unknown_issuer"
UNKNOWN_KEY = "unknown_key"
BAD_SIGNATURE = "bad_signature"
EXPIRED = "expired"
WRONG_AUDIENCE = "wrong_audience"
WRONG_APP = "wrong_app"
UNAVAILABLE = "unavailable"


def local_issuer_url(settings: IdentitySettings) -> str:
    return settings.issuer.rstrip("/") + "/attestation/local"


@dataclass(frozen=True)
class Outcome:
    result: str
    app_id: str | None = None


class _Refused(Exception):
    def __init__(self, result: str) -> None:
        super().__init__(result)
        self.result = result


@dataclass
class _Issuer:
    audiences: list[str]
    algorithms: list[str]
    key: Callable[[str], jwt.PyJWK]  # kid -> key; raises _Refused


class LocalAttestationIssuer:
    """Mints attestation tokens for an app, signed by Vault transit (blocking: use a thread)."""

    def __init__(self, settings: IdentitySettings, client: VaultClient) -> None:
        self.settings = settings
        self.jwks = JwksCache(client, LOCAL_TRANSIT_KEY)
        self._signer = TransitJwtSigner(client, self.jwks)

    @property
    def issuer(self) -> str:
        return local_issuer_url(self.settings)

    def mint(self, app_id: str) -> str:
        now = int(time.time())
        return self._signer.sign(
            {
                "iss": self.issuer,
                "sub": app_id,
                "aud": [LOCAL_AUDIENCE],
                "iat": now,
                "exp": now + self.settings.local_attestation_ttl,
                "jti": uuid.uuid4().hex,
            }
        )

    def key(self, kid: str) -> jwt.PyJWK:
        """A key of the issuer's JWKS (read from Vault transit, refreshed in the background)."""
        try:
            doc = self.jwks.document() or self.jwks.load().document
        except Exception as exc:  # Vault unreachable and no copy yet
            log.warning("local attestation keys unavailable: %s", type(exc).__name__)
            raise _Refused(UNAVAILABLE) from None
        found = next((k for k in jwt.PyJWKSet.from_dict(doc).keys if k.key_id == kid), None)
        if found is None:
            raise _Refused(UNKNOWN_KEY)
        return found


class AttestationChecker:
    """Verifies attestation tokens against the trusted issuers (blocking: use a thread)."""

    def __init__(
        self, settings: IdentitySettings, local: LocalAttestationIssuer | None = None
    ) -> None:
        self._leeway = 30
        self._issuers: dict[str, _Issuer] = {}
        if settings.firebase_project_number:
            number = settings.firebase_project_number
            self._add_remote(
                FIREBASE_ISSUER + number,
                settings.firebase_jwks_url,
                [f"projects/{number}"],
                ["RS256"],
                settings.attestation_jwks_ttl,
            )
        for spec in settings.attestation_issuers:
            self._add_remote(
                spec.issuer,
                spec.jwks_url,
                spec.audiences,
                spec.algorithms,
                settings.attestation_jwks_ttl,
            )
        if local is not None:
            self._issuers[local.issuer] = _Issuer([LOCAL_AUDIENCE], ["RS256"], local.key)

    def _add_remote(
        self, issuer: str, url: str, audiences: list[str], algorithms: list[str], ttl: int
    ) -> None:
        # PyJWKClient caches the set for `ttl` and refetches for an unknown kid at most every
        # 30 s (its cooldown), so made-up key ids cannot turn into requests to the issuer.
        client = jwt.PyJWKClient(url, cache_jwk_set=True, lifespan=ttl, timeout=3)

        def key(kid: str) -> jwt.PyJWK:
            try:
                return client.get_signing_key(kid)
            except jwt.PyJWKClientConnectionError as exc:
                log.warning("attestation keys of %s unavailable: %s", issuer, exc)
                raise _Refused(UNAVAILABLE) from None
            except (jwt.PyJWKClientError, jwt.PyJWKSetError):
                raise _Refused(UNKNOWN_KEY) from None

        self._issuers[issuer] = _Issuer(audiences, algorithms, key)

    @property
    def issuers(self) -> list[str]:
        return sorted(self._issuers)

    def check(self, token: str | None, app_ids: Sequence[str]) -> Outcome:
        """The outcome for `token` (an attestation header value) against an app's allowlist."""
        try:
            return Outcome(VALID, self._verify(token, app_ids))
        except _Refused as refused:
            return Outcome(refused.result)

    def _verify(self, token: str | None, app_ids: Sequence[str]) -> str:
        if not token:
            raise _Refused(MISSING)
        if len(token) > MAX_TOKEN_CHARS:
            raise _Refused(MALFORMED)
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            raise _Refused(MALFORMED) from None
        iss = claims.get("iss")
        issuer = self._issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise _Refused(UNKNOWN_ISSUER)
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in issuer.algorithms or header.get("typ", "JWT") != "JWT":
            raise _Refused(MALFORMED)
        if not isinstance(kid, str) or not kid:
            raise _Refused(MALFORMED)
        key = issuer.key(kid)
        try:
            verified = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=issuer.audiences,
                issuer=iss,
                leeway=self._leeway,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            )
        except (jwt.ExpiredSignatureError, jwt.ImmatureSignatureError):
            raise _Refused(EXPIRED) from None
        except jwt.InvalidAudienceError:
            raise _Refused(WRONG_AUDIENCE) from None
        except jwt.InvalidSignatureError:
            raise _Refused(BAD_SIGNATURE) from None
        except (jwt.InvalidTokenError, jwt.PyJWKError, ValueError, TypeError):
            raise _Refused(MALFORMED) from None
        sub = verified.get("sub")
        if not isinstance(sub, str) or sub not in app_ids:
            raise _Refused(WRONG_APP)
        return sub
