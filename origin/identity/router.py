"""HTTP surface of the token issuer: `POST /oauth/token`, JWKS and OpenID discovery."""

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

from origin.identity.issuer import GRANTS, SCOPES, IssuerUnavailable, OAuthError, TokenIssuer
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
    """client_secret_basic (RFC 6749 section 2.3.1); raises OAuthError when malformed."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError("invalid_client", "malformed Basic credentials", 401) from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise OAuthError("invalid_client", "malformed Basic credentials", 401)
    return unquote(client_id), unquote(secret)


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
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
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
) -> APIRouter:
    router = APIRouter(tags=["identity"])

    @router.post("/oauth/token", summary="OAuth 2.0 token endpoint (RFC 6749)")
    async def token(request: Request) -> Any:
        try:
            basic = _basic_auth(request.headers.get("authorization"))
            form = await _read_form(request)
            result = await asyncio.to_thread(issuer.issue, form, basic)
        except OAuthError as err:
            metrics.token_errors.labels(err.error).inc()
            return oauth_error(request, err)
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
                "scopes_supported": list(SCOPES),
                "response_types_supported": ["token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["EdDSA"],
                "token_endpoint_auth_signing_alg_values_supported": ["EdDSA"],
            },
            headers={"Cache-Control": f"public, max-age={settings.jwks_max_age}"},
        )

    return router
