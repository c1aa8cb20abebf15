"""Complete the origin's generated OpenAPI document.

The routers read their bodies themselves (fast JSON, 415/400/422 problems), so FastAPI cannot
see the request schemas or the error answers. This fills them in: request bodies for the
inference routes and the RFC 9457 problem responses every route can give (in place of
FastAPI's default `422` body, which the origin never sends), so clients and schema-driven
fuzzers (tests/resilience/fuzz) see the real contract.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from origin.api.images import ImageRequest
from origin.api.oip import InferRequest
from origin.api.openai import ClassificationRequest, EmbeddingsRequest
from origin.api.rerank import RerankRequest

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "request_id": {"type": ["string", "null"]},
        "trace_id": {"type": "string", "description": "W3C trace id of the request"},
    },
}
_REF = "#/components/schemas/{model}"
# Status codes any route may answer with a problem (client mistakes, overload, not ready).
_COMMON = {404: "Unknown model or version", 405: "Method not allowed", 503: "Not ready"}
_BODY = {
    400: "Malformed request",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Invalid request",
    429: "Queue full (see Retry-After)",
}
_REQUEST_MODELS: dict[str, type[BaseModel]] = {
    "/v1/embeddings": EmbeddingsRequest,
    "/v1/classifications": ClassificationRequest,
    "/v1/rerank": RerankRequest,
    "/v1/images/embeddings": ImageRequest,
    "/v1/images/classifications": ImageRequest,
    "/v2/models/{model}/infer": InferRequest,
    "/v2/models/{model}/versions/{version}/infer": InferRequest,
}


# The multipart form of the image routes: files plus the JSON body's other fields as text.
_IMAGE_FORM: dict[str, Any] = {
    "type": "object",
    "required": ["model", "file"],
    "properties": {
        "model": {"type": "string"},
        "file": {"type": "array", "items": {"type": "string", "format": "binary"}},
        "top_k": {"type": "integer", "minimum": 1},
        "encoding_format": {"type": "string", "enum": ["float", "base64"]},
    },
}


# The token endpoint (RFC 6749): a form in, a token or an OAuth error (`error`,
# `error_description`) out; caps and Vault outages are problems.
_TOKEN_FORM: dict[str, Any] = {
    "type": "object",
    "required": ["grant_type"],
    "properties": {
        name: {"type": "string"}
        for name in (
            "grant_type",
            "client_id",
            "client_secret",
            "api_key",
            "refresh_token",
            "scope",
            "device_id",
        )
    },
}
_OAUTH_ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
}
_TOKEN: dict[str, Any] = {
    "type": "object",
    "required": ["access_token", "token_type", "expires_in"],
    "properties": {
        "access_token": {"type": "string"},
        "token_type": {"type": "string", "enum": ["Bearer", "DPoP"]},
        "expires_in": {"type": "integer"},
        "scope": {"type": "string"},
        "refresh_token": {"type": "string"},
        "device_id": {"type": "string"},
    },
}


def _token_endpoint(op: dict[str, Any]) -> None:
    form = {"application/x-www-form-urlencoded": {"schema": _TOKEN_FORM}}
    op["requestBody"] = {"required": True, "content": form}
    oauth_error = {"application/json": {"schema": _OAUTH_ERROR}}
    op["responses"] = {
        "200": {"description": "A token", "content": {"application/json": {"schema": _TOKEN}}},
        "400": {"description": "OAuth error (RFC 6749 §5.2)", "content": oauth_error},
        "401": {"description": "Client authentication failed", "content": oauth_error},
        "429": _problem("Registration cap spent (see Retry-After)"),
        "503": _problem("Token issuing unavailable (see Retry-After)"),
    }


def _problem(description: str) -> dict[str, Any]:
    ref = {"$ref": _REF.format(model="Problem")}
    return {"description": description, "content": {"application/problem+json": {"schema": ref}}}


def complete_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """Add request bodies and problem responses to a generated document (in place)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = PROBLEM_SCHEMA
    for path, ops in schema.get("paths", {}).items():
        for method, op in ops.items():
            responses = op.setdefault("responses", {})
            codes = dict(_COMMON)
            if method == "post":
                codes.update(_BODY)
            if "{version}" in path:
                codes[422] = "Invalid request"
            for code, text in codes.items():
                responses.setdefault(str(code), _problem(text))
            if "422" in responses and "application/json" in responses["422"].get("content", {}):
                # FastAPI's own validation error body: the origin answers those as problems
                # too (origin.problems), so say so.
                responses["422"] = _problem("Invalid request")
            model = _REQUEST_MODELS.get(path)
            if method == "post" and model is not None:
                body = model.model_json_schema(ref_template=_REF)
                components.update(body.pop("$defs", {}))
                components[model.__name__] = body
                ref = {"$ref": _REF.format(model=model.__name__)}
                content: dict[str, Any] = {"application/json": {"schema": ref}}
                if model is ImageRequest:
                    content["multipart/form-data"] = {"schema": _IMAGE_FORM}
                op["requestBody"] = {"required": True, "content": content}
    token = schema.get("paths", {}).get("/oauth/token", {}).get("post")
    if token is not None:
        _token_endpoint(token)
    for unused in ("HTTPValidationError", "ValidationError"):  # only FastAPI's 422 used them
        components.pop(unused, None)
    metrics = schema.get("paths", {}).get("/metrics", {}).get("get")
    if metrics is not None:
        text = {"text/plain": {"schema": {"type": "string"}}}
        metrics["responses"]["200"] = {"description": "Prometheus text format", "content": text}
    return schema


def install_openapi(app: FastAPI) -> None:
    """Serve the completed document at /openapi.json (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete_openapi(
                get_openapi(title=app.title, version=app.version, routes=app.routes)
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
