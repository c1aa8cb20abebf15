"""One request contract: both inbound adapters (ASGI for the local server, the Worker's fetch)
build the same `EdgeRequest` from the same request, by `edge.core.request.build_request`'s rule
(path normalised as RFC 3986 §6.2.2 allows, never decoded into URL syntax)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.adapters.asgi import request_from_scope
from edge.adapters.clientip import TrustedProxies
from edge.adapters.worker import request_from_fetch
from edge.core.request import EdgeRequest, normalise_path
from edge.core.routes import match

# (the request target as sent on the wire, the path the edge routes and forwards, its query)
TARGETS = [
    ("/v1/embeddings", "/v1/embeddings", ""),
    ("/v2/models/ir%69s/infer", "/v2/models/iris/infer", ""),  # escaped unreserved: decoded
    ("/v2/models/a%2fb/infer", "/v2/models/a%2Fb/infer", ""),  # escaped "/": stays data
    ("/v2/models/a%3Fb/infer?x=1", "/v2/models/a%3Fb/infer", "x=1"),  # escaped "?": data
    ("/v1/models?limit=2&q=a%20b", "/v1/models", "limit=2&q=a%20b"),  # query kept as sent
    ("/v2/models/caf%C3%A9", "/v2/models/caf%C3%A9", ""),  # escaped UTF-8: kept
    ("/v1/%7Euser", "/v1/~user", ""),
]


def _asgi(target: str, headers: list[tuple[str, str]]) -> EdgeRequest:
    path, _, query = target.partition("?")
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": "/ignored-when-raw_path-is-given",
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": [(n.lower().encode(), v.encode()) for n, v in headers],
        "client": ("198.51.100.9", 5000),
    }
    return request_from_scope(scope, b"{}", TrustedProxies(()))


def _worker(target: str, headers: list[tuple[str, str]]) -> EdgeRequest:
    return request_from_fetch("POST", "https://edge.example" + target, headers, b"{}")


ADAPTERS = [pytest.param(_asgi, id="asgi"), pytest.param(_worker, id="worker")]


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize(("target", "path", "query"), TARGETS)
def test_both_adapters_give_the_path_and_query_of_the_rule(
    adapter: Any, target: str, path: str, query: str
) -> None:
    req = adapter(target, [("Content-Type", "application/json")])
    assert (req.method, req.path, req.query, req.body) == ("POST", path, query, b"{}")
    assert req.target == (f"{path}?{query}" if query else path)


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_both_adapters_lower_case_names_and_join_repeated_headers(adapter: Any) -> None:
    req = adapter(
        "/v1/embeddings",
        [("X-Tag", "a"), ("Accept", "application/json"), ("x-tag", "b"), ("X-TAG", "c")],
    )
    assert req.headers["x-tag"] == "a, b, c"
    assert req.headers["accept"] == "application/json"


def test_both_adapters_agree_on_every_request() -> None:
    for target, _, _ in TARGETS:
        headers = [("Authorization", "Bearer t"), ("Accept-Encoding", "gzip")]
        a, w = _asgi(target, headers), _worker(target, headers)
        assert (a.method, a.path, a.query, a.headers) == (w.method, w.path, w.query, w.headers)


def test_raw_bytes_that_are_not_utf8_are_escaped_as_themselves() -> None:
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/x",
        "raw_path": b"/v1/models/caf\xe9",
        "query_string": b"",
        "headers": [],
    }
    req = request_from_scope(scope, b"", TrustedProxies(()))
    assert req.path == "/v1/models/caf%E9"


@given(st.text(max_size=60))
def test_normal_form_is_stable_and_only_ascii_url_characters(path: str) -> None:
    once = normalise_path("/" + path)
    assert normalise_path(once) == once
    assert once.isascii() and once.isprintable() and " " not in once
    assert "#" not in once and "?" not in once


@given(st.text(alphabet="/%2fF3aA.-_~", max_size=30))
def test_no_escape_can_make_a_path_match_a_route_its_decoded_form_would_not(tail: str) -> None:
    """An escaped "/" or "." never becomes path syntax: a normalised path routes only if it is
    made of plain segments."""
    path = normalise_path("/v2/models/" + tail)
    found = match("GET", path) if "%" in path else None
    assert found is None
