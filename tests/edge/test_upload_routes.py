"""The image and rerank routes through the edge: scope, their own rate class, the image body
limit, and one cache entry per uploaded picture whatever form carried it (multipart files or
base64 in JSON), per document list whatever shape the documents had. In-process
(tests/edge/harness.py)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.edge.conftest import Issuer
from tests.edge.harness import EdgeUnderTest

PHOTO = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8  # bytes standing in for a JPEG


@pytest.fixture(scope="module")
def auth(mem_issuer: Issuer) -> dict[str, str]:
    return {"authorization": f"Bearer {mem_issuer.token('ed-1', sub='uploader')}"}


async def test_one_photo_is_one_cache_entry_whichever_form_carries_it(
    make_edge: Any, auth: dict[str, str]
) -> None:
    edge: EdgeUnderTest = make_edge({"rate_limits": {"images": {"rate": 1, "burst": 5}}})
    multipart = await edge.client.post(
        "/v1/images/classifications",
        data={"model": "tiny-embed"},
        files={"file": ("photo.jpg", PHOTO, "image/jpeg")},
        headers=auth,
    )
    assert multipart.status_code == 200, multipart.text
    assert multipart.headers["x-cache"] == "MISS"
    assert multipart.headers["ratelimit-policy"].startswith('"images";q=5')
    as_json = await edge.client.post(
        "/v1/images/classifications",
        json={"model": "tiny-embed", "input": base64.b64encode(PHOTO).decode()},
        headers=auth,
    )
    assert as_json.headers["x-cache"] == "HIT"
    data_url = "data:image/jpeg;base64," + base64.b64encode(PHOTO).decode()
    again = await edge.client.post(
        "/v1/images/classifications", json={"model": "tiny-embed", "input": data_url}, headers=auth
    )
    assert again.headers["x-cache"] == "HIT"
    assert len(edge.origin.inference_calls()) == 1


async def test_image_routes_take_larger_bodies_up_to_their_own_limit(
    make_edge: Any, auth: dict[str, str]
) -> None:
    edge: EdgeUnderTest = make_edge(
        {"max_request_bytes": 4096, "max_image_request_bytes": 64 * 1024}
    )
    big = PHOTO * 8  # 16 KB: over the general limit, under the image limit
    ok = await edge.client.post(
        "/v1/images/embeddings",
        data={"model": "tiny-embed"},
        files={"file": ("p.jpg", big, "image/jpeg")},
        headers=auth,
    )
    assert ok.status_code == 200, ok.text
    too_big = await edge.client.post(
        "/v1/images/embeddings",
        data={"model": "tiny-embed"},
        files={"file": ("p.jpg", big * 8, "image/jpeg")},
        headers=auth,
    )
    assert too_big.status_code == 413
    text = await edge.embed(auth["authorization"].split()[1], "x" * 5000)
    assert text.status_code == 413  # the other routes keep the general limit


async def test_bad_uploads_are_refused_at_the_edge(make_edge: Any, auth: dict[str, str]) -> None:
    edge: EdgeUnderTest = make_edge()
    for kwargs, status in (
        ({"content": b"plain", "headers": {"content-type": "text/plain"}}, 415),
        ({"json": {"model": "tiny-embed", "input": "not base64 !!"}}, 422),  # as the origin
        ({"json": {"model": "tiny-embed", "input": 7}}, 422),
    ):
        headers = {**auth, **kwargs.pop("headers", {})}
        resp = await edge.client.post("/v1/images/embeddings", headers=headers, **kwargs)
        assert resp.status_code == status, resp.text
        assert resp.headers["content-type"] == "application/problem+json"
    assert edge.origin.inference_calls() == []


async def test_rerank_documents_as_objects_or_strings_share_a_key(
    make_edge: Any, auth: dict[str, str]
) -> None:
    edge: EdgeUnderTest = make_edge()
    plain = {"model": "tiny-embed", "query": "q", "documents": ["a", "b"], "top_n": 1}
    first = await edge.client.post("/v1/rerank", json=plain, headers=auth)
    assert first.status_code == 200 and first.headers["x-cache"] == "MISS"
    objects = {**plain, "documents": [{"text": "a"}, {"text": "b"}]}
    second = await edge.client.post("/v1/rerank", json=objects, headers=auth)
    assert second.headers["x-cache"] == "HIT"
    unauthenticated = await edge.client.post("/v2/rerank", json=plain)
    assert unauthenticated.status_code == 401
