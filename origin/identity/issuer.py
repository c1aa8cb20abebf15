"""OAuth 2.0 token issuing: client_credentials, device registration and refresh_token grants.

Blocking (it signs through Vault transit): the HTTP layer runs it in a worker thread. Credentials
are checked against HMACs in the in-memory secrets snapshot; only signing and refresh-token family
state touch Vault.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import hvac.exceptions

from origin import tracing
from origin.identity.credentials import Principal, decode_key, verify_api_key, verify_client
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
_DEVICE_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


@dataclass
class OAuthError(Exception):
    """An RFC 6749 section 5.2 error response."""

    error: str
    description: str
    status: int = 400
    headers: dict[str, str] = field(default_factory=dict)


class IssuerUnavailable(Exception):
    """Vault (transit or KV state) cannot be used right now: answer 503 + Retry-After."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _scope(requested: str | None, allowed: tuple[str, ...]) -> tuple[str, ...]:
    if not requested:
        return allowed
    asked = tuple(dict.fromkeys(requested.split()))
    unknown = [s for s in asked if s not in allowed]
    if unknown:
        raise OAuthError("invalid_scope", f"scope not allowed: {' '.join(unknown)}")
    return asked


class TokenIssuer:
    def __init__(
        self,
        settings: IdentitySettings,
        snapshot: SecretsSnapshot,
        signer: TransitJwtSigner,
        refresh_store: RefreshTokenStore,
    ) -> None:
        self.settings = settings
        self._snapshot = snapshot
        self._signer = signer
        self._refresh = refresh_store

    def _key(self, name: str) -> bytes:
        try:
            return decode_key(str(self._snapshot.require(name)["key"]))
        except (SecretsUnavailable, KeyError) as exc:
            raise IssuerUnavailable(f"secret {name!r} not loaded") from exc

    def _access_token(self, principal: Principal, scope: tuple[str, ...], subject: str) -> str:
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
        return self._signer.sign(claims)

    def _response(self, access: str, scope: tuple[str, ...], **extra: Any) -> dict[str, Any]:
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.settings.access_token_ttl,
            "scope": " ".join(scope),
            **{k: v for k, v in extra.items() if v is not None},
        }

    @tracing.traced("token.issue")
    def issue(self, form: Mapping[str, str], basic: tuple[str, str] | None) -> dict[str, Any]:
        """Handle one token request; raise OAuthError (4xx) or IssuerUnavailable (503)."""
        grant = form.get("grant_type")
        if not grant:
            raise OAuthError("invalid_request", "grant_type is required")
        if grant not in GRANTS:
            raise OAuthError("unsupported_grant_type", f"supported: {', '.join(GRANTS)}")
        tracing.tag("oauth.grant_type", grant)
        try:
            if grant == GRANT_CLIENT_CREDENTIALS:
                return self._client_credentials(form, basic)
            if grant == GRANT_DEVICE:
                return self._device_registration(form)
            return self._refresh_grant(form)
        except (SigningUnavailable, *UNAVAILABLE_ERRORS) as exc:
            raise IssuerUnavailable(describe_error(exc)) from exc
        except hvac.exceptions.VaultError as exc:
            log.warning("token issuing failed: %s", describe_error(exc))
            raise IssuerUnavailable(describe_error(exc)) from exc

    def _client_credentials(
        self, form: Mapping[str, str], basic: tuple[str, str] | None
    ) -> dict[str, Any]:
        if basic is not None:
            client_id, client_secret = basic
        else:
            client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        if not client_id or not client_secret:
            raise OAuthError("invalid_client", "client authentication required", status=401)
        clients = self._snapshot.get("clients") or {}
        principal = verify_client(self._key("hmac"), clients, client_id, client_secret)
        if principal is None:
            headers = {"WWW-Authenticate": 'Basic realm="outpost"'} if basic else {}
            raise OAuthError("invalid_client", "client authentication failed", 401, headers)
        scope = _scope(form.get("scope"), principal.scope)
        return self._response(self._access_token(principal, scope, principal.subject), scope)

    def _device_registration(self, form: Mapping[str, str]) -> dict[str, Any]:
        api_key = form.get("api_key", "")
        if not api_key:
            raise OAuthError("invalid_request", "api_key is required")
        device_id = form.get("device_id") or uuid.uuid4().hex
        if not _DEVICE_ID.match(device_id):
            raise OAuthError("invalid_request", "device_id must be 8-128 of [A-Za-z0-9._:-]")
        apps = self._snapshot.get("apps") or {}
        principal = verify_api_key(self._key("hmac"), apps, api_key)
        if principal is None:
            raise OAuthError("invalid_client", "unknown or wrong api_key", status=401)
        scope = _scope(form.get("scope"), principal.scope)
        subject = f"device:{principal.client_id}:{device_id}"
        access = self._access_token(principal, scope, subject)
        refresh = self._refresh.start_family(
            self._key("refresh"), subject, principal.client_id, scope
        )
        return self._response(access, scope, refresh_token=refresh, device_id=device_id)

    def _refresh_grant(self, form: Mapping[str, str]) -> dict[str, Any]:
        token = form.get("refresh_token", "")
        if not token:
            raise OAuthError("invalid_request", "refresh_token is required")
        try:
            grant = self._refresh.rotate(self._key("refresh"), token)
        except InvalidRefreshToken as exc:
            raise OAuthError("invalid_grant", str(exc)) from None
        scope = _scope(form.get("scope"), grant.scope)
        principal = Principal(grant.subject, grant.client_id, grant.scope)
        access = self._access_token(principal, scope, grant.subject)
        return self._response(access, scope, refresh_token=grant.token)
