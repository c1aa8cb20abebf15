"""The edge's OpenAPI 3.1 document: valid, true to the route table, and served by the edge."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from edge.core import routes
from edge.core.openapi import openapi_document
from tests.edge.conftest import Issuer, Proc, issuer_settings, start_edge


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return openapi_document()


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "tiny-embed", path).replace("versions/tiny-embed", "versions/1")


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            yield path, method.upper(), op


def test_document_is_valid_openapi_3_1(doc: dict[str, Any]) -> None:
    assert doc["openapi"] == "3.1.0"
    validate(doc)


def test_every_documented_operation_is_a_real_route_with_its_scope(doc: dict[str, Any]) -> None:
    for path, method, op in _operations(doc):
        found = routes.match(method, _concrete(path))
        assert found is not None, f"{method} {path} is documented but not routed"
        route = found.route
        expected = [{"bearer": [route.scope]}] if route.scope else []
        assert op["security"] == expected, (method, path)
        assert op["x-outpost-cached"] == route.cacheable
        if not route.local:
            assert op["x-outpost-rate-class"] == route.rate_class


def test_every_route_and_method_is_documented(doc: dict[str, Any]) -> None:
    documented = {(routes.match(m, _concrete(p)).route.name, m) for p, m, _ in _operations(doc)}
    for _pattern, route in routes._TABLE:
        for method in route.methods:
            if method != "HEAD":
                assert (route.name, method) in documented, (route.name, method)


def test_forwarded_operations_document_rate_limits_and_problems(doc: dict[str, Any]) -> None:
    for _path, _method, op in _operations(doc):
        for status, response in op["responses"].items():
            if int(status) >= 400:
                content = response["content"]["application/problem+json"]["schema"]
                assert content == {"$ref": "#/components/schemas/Problem"}
    embeddings = doc["paths"]["/v1/embeddings"]["post"]
    limited = embeddings["responses"]["429"]["headers"]
    assert "Retry-After" in limited and "RateLimit" in limited
    assert embeddings["security"] == [{"bearer": ["inference"]}]
    for status in ("401", "403", "413", "415", "429", "502", "503", "504"):
        assert status in embeddings["responses"], status
    ok_headers = embeddings["responses"]["200"]["headers"]
    assert {"X-Cache", "X-Model-Version", "RateLimit", "X-Request-ID"} <= set(ok_headers)
    health = doc["paths"]["/healthz"]["get"]
    assert health["security"] == []
    assert "429" not in health["responses"]  # answered by the edge, never rate-limited


def test_edge_serves_the_document_at_openapi_json(
    doc: dict[str, Any], issuer: Issuer, oidc_issuer: Issuer, shared_origin: Proc, log_dir: Path
) -> None:
    edge = start_edge(
        {"origins": [{"url": shared_origin.url}], "issuers": issuer_settings(issuer, oidc_issuer)},
        log_dir,
    )
    try:
        r = httpx.get(edge.url + "/openapi.json", timeout=10)
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/json"
        assert r.json() == doc
        cached = httpx.get(
            edge.url + "/openapi.json", headers={"if-none-match": r.headers["etag"]}, timeout=10
        )
        assert cached.status_code == 304
        assert httpx.post(edge.url + "/openapi.json", timeout=10).status_code == 405
    finally:
        edge.stop()
