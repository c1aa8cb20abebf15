"""OAuth 2.0 token issuing: client_credentials, device registration and refresh_token grants.

Blocking (it signs through Vault transit): the HTTP layer runs it in a worker thread. Credentials
are checked against HMACs in the in-memory secrets snapshot; only signing and refresh-token family
state touch Vault.

Devices are their keys: registration and refresh need a DPoP proof (`origin.identity.dpop`), the
device id is the key's thumbprint, and the tokens are bound to it. A registration also passes the
caps (`origin.identity.limits`) and, when its app asks, app attestation
(`origin.identity.attestation`) before anything is written to Vault.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import hvac.exceptions

from origin import strict, tracing
from origin.identity import attestation
from origin.identity.attestation import AttestationChecker
from origin.identity.credentials import Principal, decode_key, verify_api_key, verify_client
from origin.identity.dpop import ProofChecker, ProofError
from origin.identity.limits import ClientAddress, TokenBuckets
from origin.identity.metrics import VaultMetrics
from origin.identity.refresh import InvalidRefreshToken, RefreshTokenStore
from origin.identity.settings import IdentitySettings
from origin.identity.signer import SigningUnavailable, TransitJwtSigner
from origin.secrets.client import UNAVAILABLE_ERRORS
from origin.secrets.snapshot import SecretsSnapshot, SecretsUnavailable, describe_error

log = logging.getLogger("outpost.origin.issuer")

GRANT_CLIENT_CREDENTIALS = "client_credentials"
GRANT_REFRESH = "refresh_token"
GRANT_DEVICE = "urn:outpost:params:oauth:grant-type:device-registration"
GRANTS = (GRANT_CLIENT_CREDENTIALS, GRANT_DEVICE, GRANT_REFRESH)
SCOPES = ("inference", "models:read")


@dataclass
class OAuthError(Exception):
    """An RFC 6749 section 5.2 error response."""

    error: str
    description: str
    status: int = 400
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class RegistrationLimited(Exception):
    """A registration cap is spent: answer 429 with Retry-After."""

    cap: str  # "address" or "app"
    retry_after: int


class IssuerUnavailable(Exception):
    """Vault (transit or KV state) cannot be used right now: answer 503 + Retry-After."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class TokenRequest:
    """What the token endpoint read from one request."""

    form: Mapping[str, str]
    basic: tuple[str, str] | None = None
    dpop: str | None = None  # the DPoP header
    client_address: str = ""  # for the per-address registration cap
    attestation: str | None = None  # the attestation header (App Check token)


def _scope(requested: str | None, allowed: tuple[str, ...]) -> tuple[str, ...]:
    if not requested:
        return allowed
    asked = tuple(dict.fromkeys(requested.split()))
    unknown = [s for s in asked if s not in allowed]
    if unknown:
        raise OAuthError("invalid_scope", f"scope not allowed: {' '.join(unknown)}")
    return asked


def _positive(record: Mapping[str, Any], name: str, default: int) -> int:
    value = record.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return default
    return value


class TokenIssuer:
    def __init__(
        self,
        settings: IdentitySettings,
        snapshot: SecretsSnapshot,
        signer: TransitJwtSigner,
        refresh_store: RefreshTokenStore,
        *,
        attestation_checker: AttestationChecker | None = None,
        metrics: VaultMetrics | None = None,
    ) -> None:
        self.settings = settings
        self._snapshot = snapshot
        self._signer = signer
        self._refresh = refresh_store
        self._attestation = attestation_checker or AttestationChecker(settings)
        self._metrics = metrics or VaultMetrics()
        base = settings.issuer.rstrip("/")
        self.proofs = ProofChecker(
            [f"{base}/oauth/token", *settings.token_endpoint_urls],
            algorithms=settings.dpop_algorithms,
            max_age=settings.dpop_max_age,
            clock_skew=settings.dpop_clock_skew,
        )
        self.buckets = TokenBuckets()
        self.addresses = ClientAddress(settings.ipv6_prefix)

    @property
    def snapshot(self) -> SecretsSnapshot:
        return self._snapshot

    def pepper(self) -> bytes:
        """The HMAC key API keys and client secrets are stored under."""
        return self._key("hmac")

    def _key(self, name: str) -> bytes:
        try:
            return decode_key(str(self._snapshot.require(name)["key"]))
        except (SecretsUnavailable, KeyError) as exc:
            raise IssuerUnavailable(f"secret {name!r} not loaded") from exc

    def _access_token(
        self, principal: Principal, scope: tuple[str, ...], subject: str, jkt: str | None
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.settings.issuer,
            "sub": subject,
            "aud": self.settings.audience,
            "iat": now,
            "nbf": now,
            "exp": now + self.settings.access_token_ttl,
            "jti": uuid.uuid4().hex,
            "scope": " ".join(scope),
            "client_id": principal.client_id,
        }
        if jkt is not None:
            claims["cnf"] = {"jkt": jkt}  # RFC 9449 section 6.1
        return self._signer.sign(claims)

    def _response(
        self, access: str, scope: tuple[str, ...], bound: bool, **extra: Any
    ) -> dict[str, Any]:
        return {
            "access_token": access,
            "token_type": "DPoP" if bound else "Bearer",
            "expires_in": self.settings.access_token_ttl,
            "scope": " ".join(scope),
            **{k: v for k, v in extra.items() if v is not None},
        }

    def _proof(self, request: TokenRequest, required: bool) -> str | None:
        """The device key's thumbprint from the request's DPoP proof (None: no proof, allowed)."""
        if request.dpop is None and not required:
            return None
        try:
            return self.proofs.check(request.dpop).jkt
        except ProofError as exc:
            raise OAuthError("invalid_dpop_proof", str(exc)) from None

    @tracing.traced("token.issue")
    def issue(self, request: TokenRequest) -> dict[str, Any]:
        """Handle one token request; raise OAuthError (4xx), RegistrationLimited (429) or
        IssuerUnavailable (503)."""
        form = request.form
        grant = form.get("grant_type")
        if not grant:
            raise OAuthError("invalid_request", "grant_type is required")
        if grant not in GRANTS:
            raise OAuthError("unsupported_grant_type", f"supported: {', '.join(GRANTS)}")
        tracing.tag("oauth.grant_type", grant)
        try:
            if grant == GRANT_CLIENT_CREDENTIALS:
                return self._client_credentials(request)
            if grant == GRANT_DEVICE:
                return self._device_registration(request)
            return self._refresh_grant(request)
        except (SigningUnavailable, *UNAVAILABLE_ERRORS) as exc:
            raise IssuerUnavailable(describe_error(exc)) from exc
        except hvac.exceptions.VaultError as exc:
            log.warning("token issuing failed: %s", describe_error(exc))
            raise IssuerUnavailable(describe_error(exc)) from exc

    def _client_credentials(self, request: TokenRequest) -> dict[str, Any]:
        form = request.form
        if request.basic is not None:
            client_id, client_secret = request.basic
        else:
            client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        if not client_id or not client_secret:
            raise OAuthError("invalid_client", "client authentication required", status=401)
        headers = {"WWW-Authenticate": 'Basic realm="outpost"'} if request.basic else {}
        if not (
            strict.CLIENT_ID.fullmatch(client_id) and strict.CLIENT_SECRET.fullmatch(client_secret)
        ):
            raise OAuthError("invalid_client", "client authentication failed", 401, headers)
        clients = self._snapshot.get("clients") or {}
        principal = verify_client(self._key("hmac"), clients, client_id, client_secret)
        if principal is None:
            raise OAuthError("invalid_client", "client authentication failed", 401, headers)
        scope = _scope(form.get("scope"), principal.scope)
        jkt = self._proof(request, required=False)  # a service may bind its token too
        access = self._access_token(principal, scope, principal.subject, jkt)
        return self._response(access, scope, jkt is not None)

    def _take(self, cap: str, key: str, limit: int, window: int) -> None:
        wait = self.buckets.take(key, limit, window)
        if wait is not None:
            self._metrics.registrations_limited.labels(cap).inc()
            raise RegistrationLimited(cap, wait)

    def _device_registration(self, request: TokenRequest) -> dict[str, Any]:
        form, s = request.form, self.settings
        api_key = form.get("api_key", "")
        if not api_key:
            raise OAuthError("invalid_request", "api_key is required")
        # Cheapest refusals first: an address that spent its cap costs nothing more, a wrong key
        # one HMAC; the proof's signature, attestation and Vault come after.
        address = self.addresses.bucket(request.client_address or "unknown")
        self._take("address", address, s.register_per_address, s.register_address_window)
        apps = self._snapshot.get("apps") or {}
        principal = verify_api_key(self._key("hmac"), apps, api_key)
        if principal is None:
            raise OAuthError("invalid_client", "unknown, revoked or wrong api_key", status=401)
        jkt = self._proof(request, required=True)
        assert jkt is not None
        claimed = form.get("device_id")
        if claimed is not None and (not strict.DEVICE_ID.fullmatch(claimed) or claimed != jkt):
            raise OAuthError(
                "invalid_request",
                "device_id is the RFC 7638 thumbprint of the DPoP key; omit it or send that",
            )
        scope = _scope(form.get("scope"), principal.scope)
        record = apps.get(principal.client_id) or {}
        self._attest(principal.client_id, record, request.attestation)
        self._take(
            "app",
            f"app:{principal.client_id}",
            _positive(record, "register_limit", s.register_per_app),
            _positive(record, "register_window", s.register_app_window),
        )
        subject = f"device:{principal.client_id}:{jkt}"
        access = self._access_token(principal, scope, subject, jkt)
        refresh = self._refresh.start_family(
            self._key("refresh"), subject, principal.client_id, scope, jkt
        )
        return self._response(access, scope, True, refresh_token=refresh, device_id=jkt)

    def _attest(self, app_id: str, record: Mapping[str, Any], token: str | None) -> None:
        mode = record.get("attestation", "off")
        if mode not in ("monitor", "enforce"):
            return
        allowed = record.get("attested_app_ids")
        app_ids: Sequence[str] = allowed if isinstance(allowed, list) else []
        outcome = self._attestation.check(token, app_ids)
        self._metrics.attestations.labels(app_id, mode, outcome.result).inc()
        if outcome.result == attestation.VALID or mode == "monitor":
            return
        if outcome.result == attestation.UNAVAILABLE:
            raise IssuerUnavailable("attestation keys unavailable")
        raise OAuthError(
            "invalid_attestation", f"app attestation failed ({outcome.result})", status=401
        )

    def _refresh_grant(self, request: TokenRequest) -> dict[str, Any]:
        form = request.form
        token = form.get("refresh_token", "")
        if not token:
            raise OAuthError("invalid_request", "refresh_token is required")
        key = self._key("refresh")
        try:
            self._refresh.authenticate(key, token)  # a forged token costs one HMAC, no more
            jkt = self._proof(request, required=True)
            assert jkt is not None
            grant = self._refresh.rotate(key, token, jkt)
        except InvalidRefreshToken as exc:
            raise OAuthError("invalid_grant", str(exc)) from None
        scope = _scope(form.get("scope"), grant.scope)
        principal = Principal(grant.subject, grant.client_id, grant.scope)
        access = self._access_token(principal, scope, grant.subject, grant.jkt)
        return self._response(access, scope, True, refresh_token=grant.token)
