"""HTTP surface of the token issuer: `POST /oauth/token`, JWKS and OpenID discovery, and (in
development) the local attestation issuer."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, unquote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from origin import strict
from origin.identity.attestation import LocalAttestationIssuer
from origin.identity.credentials import verify_api_key
from origin.identity.issuer import (
    GRANTS,
    SCOPES,
    IssuerUnavailable,
    OAuthError,
    RegistrationLimited,
    TokenIssuer,
    TokenRequest,
)
from origin.identity.jwks import JwksCache
from origin.identity.metrics import VaultMetrics
from origin.identity.settings import IdentitySettings
from origin.problems import Problem, problem_response, request_id_of

log = logging.getLogger("outpost.origin.identity")

MAX_FORM_BYTES = 8192
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def request_id(request: Request) -> str:
    """The id set by the origin middleware; a fresh one when mounted without it (unit tests)."""
    return request_id_of(request) or request.headers.get("x-request-id") or uuid.uuid4().hex


def problem(
    request: Request, status: int, slug: str, title: str, detail: str, **headers: str
) -> Response:
    prob = Problem(status, slug, detail, title=title, headers={**NO_STORE, **headers})
    return problem_response(prob, request_id(request))


def oauth_error(request: Request, err: OAuthError) -> JSONResponse:
    """RFC 6749 section 5.2 body (the OAuth norm for the token endpoint, not problem+json)."""
    return JSONResponse(
        {"error": err.error, "error_description": err.description},
        status_code=err.status,
        headers={**NO_STORE, **err.headers},
    )


def _basic_auth(header: str | None) -> tuple[str, str] | None:
    """client_secret_basic (RFC 6749 section 2.3.1, RFC 7617): base64 of `id:secret`, each
    form-urlencoded UTF-8; raises OAuthError when malformed."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    malformed = OAuthError("invalid_client", "malformed Basic credentials", 401)
    value = value.strip(" \t")
    if not strict.BASIC.fullmatch(value):  # ASCII base64 only, bounded, before decoding
        raise malformed
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
        client_id, sep, secret = decoded.partition(":")
        client_id = unquote(client_id, errors="strict")
        secret = unquote(secret, errors="strict")
    except (binascii.Error, UnicodeDecodeError):
        raise malformed from None
    if not sep:
        raise malformed
    return client_id, secret


def client_address(request: Request) -> str:
    """The address the registration caps count: the client's as the edge proved it (the `ip:`
    subject of the request's caller proof, `origin/caller.py`); without one, uvicorn's view
    (X-Forwarded-For believed from FORWARDED_ALLOW_IPS peers only)."""
    subject = getattr(request.state, "caller_subject", None)
    if isinstance(subject, str) and subject.startswith("ip:"):
        return subject[3:]
    return request.client.host if request.client else ""


def limited(request: Request, exc: RegistrationLimited) -> Response:
    """429 as problem+json that also carries the OAuth error members, so both kinds of client
    read it (RFC 9457 allows extension members)."""
    detail = (
        f"Too many device registrations from this {'address' if exc.cap == 'address' else 'app'}"
        f"; retry in {exc.retry_after} s."
    )
    prob = Problem(
        429,
        "registration-rate-limited",
        detail,
        title="Too Many Requests",
        headers={**NO_STORE, "Retry-After": str(exc.retry_after)},
        error="temporarily_unavailable",
        error_description=detail,
    )
    return problem_response(prob, request_id(request))


def key_set(request: Request, settings: IdentitySettings, jwks: JwksCache) -> Response:
    """A cached JWKS document, or 503 until it was first read from Vault."""
    doc = jwks.document()
    if doc is None:
        return problem(
            request,
            503,
            "jwks-unavailable",
            "Signing keys not loaded yet",
            "The key set has not been read from Vault yet; retry later.",
            **{"Retry-After": str(settings.retry_after)},
        )
    return JSONResponse(
        doc,
        media_type="application/jwk-set+json",
        headers={"Cache-Control": f"public, max-age={settings.jwks_max_age}"},
    )


def _one_header(request: Request, name: str) -> str | None:
    """A header that must appear at most once: repeats are joined as a proxy would (RFC 9110
    §5.3), so two DPoP proofs or two Authorization fields are refused as one malformed value,
    directly and through the edge alike."""
    values = request.headers.getlist(name)
    return ", ".join(values) if values else None


async def _read_form(request: Request) -> dict[str, str]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "use Content-Type: application/x-www-form-urlencoded")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise OAuthError("invalid_request", f"request body over {MAX_FORM_BYTES} bytes")
    try:
        # Escapes must decode to UTF-8 too (`%FF` is refused, not turned into U+FFFD).
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=bool(body),
            errors="strict",
            max_num_fields=32,
        )
    except (UnicodeDecodeError, ValueError):
        raise OAuthError("invalid_request", "malformed form body") from None
    form: dict[str, str] = {}
    for key, value in pairs:
        if key in form:
            raise OAuthError("invalid_request", f"parameter {key!r} repeated")
        form[key] = value
    return form


def build_router(
    settings: IdentitySettings,
    issuer: TokenIssuer,
    jwks: JwksCache,
    metrics: VaultMetrics,
    *,
    on_unavailable: Callable[[str], None] | None = None,
    local_attestation: LocalAttestationIssuer | None = None,
) -> APIRouter:
    router = APIRouter(tags=["identity"])

    @router.post("/oauth/token", summary="OAuth 2.0 token endpoint (RFC 6749, DPoP RFC 9449)")
    async def token(request: Request) -> Any:
        try:
            basic = _basic_auth(_one_header(request, "authorization"))
            form = await _read_form(request)
            token_request = TokenRequest(
                form,
                basic,
                dpop=_one_header(request, "dpop"),
                client_address=client_address(request),
                attestation=request.headers.get(settings.attestation_header),
            )
            result = await asyncio.to_thread(issuer.issue, token_request)
        except OAuthError as err:
            metrics.token_errors.labels(err.error).inc()
            return oauth_error(request, err)
        except RegistrationLimited as exc:
            metrics.token_errors.labels("rate_limited").inc()
            return limited(request, exc)
        except IssuerUnavailable as exc:
            if on_unavailable is not None:
                on_unavailable(exc.reason)
            metrics.token_errors.labels("unavailable").inc()
            log.warning(
                "token issuing unavailable request_id=%s: %s", request_id(request), exc.reason
            )
            return problem(
                request,
                503,
                "token-issuing-unavailable",
                "Token issuing is temporarily unavailable",
                "The signing service (Vault transit) cannot be reached; retry later.",
                **{"Retry-After": str(settings.retry_after)},
            )
        metrics.tokens_issued.labels(form.get("grant_type", "")).inc()
        return JSONResponse(result, headers=NO_STORE)

    @router.get("/.well-known/jwks.json", summary="JSON Web Key Set (RFC 7517)")
    async def jwks_document(request: Request) -> Any:
        return key_set(request, settings, jwks)

    @router.get("/.well-known/openid-configuration", summary="OpenID Provider metadata")
    async def discovery() -> Any:
        base = settings.issuer.rstrip("/")
        return JSONResponse(
            {
                "issuer": settings.issuer,
                "jwks_uri": f"{base}/.well-known/jwks.json",
                "token_endpoint": f"{base}/oauth/token",
                "grant_types_supported": list(GRANTS),
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                ],
                "dpop_signing_alg_values_supported": list(settings.dpop_algorithms),
                "scopes_supported": list(SCOPES),
                "response_types_supported": ["token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["EdDSA"],
                "token_endpoint_auth_signing_alg_values_supported": ["EdDSA"],
            },
            headers={"Cache-Control": f"public, max-age={settings.jwks_max_age}"},
        )

    if local_attestation is not None:
        _local_attestation_routes(router, settings, issuer, local_attestation)
    return router


def _local_attestation_routes(
    router: APIRouter,
    settings: IdentitySettings,
    issuer: TokenIssuer,
    local: LocalAttestationIssuer,
) -> None:
    """The local attestation issuer (development only: `local_attestation`)."""

    @router.post(
        "/attestation/local/token",
        summary="Local attestation token for an app (development stand-in for App Check)",
    )
    async def local_attestation_token(request: Request) -> Any:
        try:
            form = await _read_form(request)
            api_key = form.get("api_key", "")
            apps = issuer.snapshot.get("apps") or {}
            principal = verify_api_key(issuer.pepper(), apps, api_key) if api_key else None
            if principal is None:
                raise OAuthError("invalid_client", "unknown, revoked or wrong api_key", 401)
            token = await asyncio.to_thread(local.mint, principal.client_id)
        except OAuthError as err:
            return oauth_error(request, err)
        except Exception as exc:  # Vault transit or the snapshot unavailable
            log.warning("local attestation unavailable: %s", type(exc).__name__)
            return problem(
                request,
                503,
                "token-issuing-unavailable",
                "Token issuing is temporarily unavailable",
                "The signing service (Vault transit) cannot be reached; retry later.",
                **{"Retry-After": str(settings.retry_after)},
            )
        return JSONResponse(
            {"token": token, "ttl": settings.local_attestation_ttl}, headers=NO_STORE
        )

    @router.get("/attestation/local/jwks.json", summary="Keys of the local attestation issuer")
    async def local_attestation_jwks(request: Request) -> Any:
        return key_set(request, settings, local.jwks)
