"""Quotas on requests and on work, per subject and per app (edge/limits/quota.py), charged all
or nothing, and what a shared store that cannot answer leads to. In-process
(tests/edge/harness.py); the shared stores themselves run for real in test_quota_redis.py and
in Pyodide (pyodide/test_quota_in_pyodide.py)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any

import pytest

from edge.limits.quota import Bucket, Once, Outcome
from tests.edge.conftest import Issuer
from tests.edge.harness import EdgeUnderTest

LONG = "word " * 300  # 1500 bytes: 375 estimated tokens


def level(resp: Any, name: str) -> tuple[int, int] | None:
    """(left, seconds until full) of one RateLimit item."""
    found = re.search(rf'"{name}";r=(\d+);t=(\d+)', resp.headers.get("ratelimit", ""))
    return (int(found[1]), int(found[2])) if found else None


async def test_a_subject_that_spends_its_work_budget_gets_429_with_retry_after(
    make_edge: Any, mem_issuer: Issuer
) -> None:
    edge: EdgeUnderTest = make_edge({"work_limits": {"inference": {"rate": 10, "burst": 1000}}})
    token = mem_issuer.token("ed-1", sub="heavy")
    first = await edge.embed(token, [LONG, LONG])  # 750 of 1000
    assert first.status_code == 200
    assert level(first, "inference-work") == (250, 75)
    refused = await edge.embed(token, [LONG, LONG])
    assert refused.status_code == 429
    assert refused.json()["type"] == "urn:outpost:problem:rate-limited"
    assert int(refused.headers["retry-after"]) == 50  # (750 - 250) / 10 per second
    light = await edge.embed(mem_issuer.token("ed-1", sub="light"), [LONG, LONG])
    assert light.status_code == 200  # another subject's budget is its own
    edge.platform.advance(50)
    assert (await edge.embed(token, [LONG, LONG], headers={"x-n": "2"})).status_code == 200


async def test_a_refused_request_takes_nothing_from_its_other_buckets(
    make_edge: Any, mem_issuer: Issuer
) -> None:
    edge: EdgeUnderTest = make_edge(
        {
            "rate_limits": {"inference": {"rate": 0.001, "burst": 5}},
            "work_limits": {"inference": {"rate": 0.001, "burst": 500}},
        }
    )
    token = mem_issuer.token("ed-1", sub="all-or-nothing")
    assert (await edge.embed(token, [LONG])).status_code == 200  # 1 request, 375 work
    for _ in range(3):
        assert (await edge.embed(token, [LONG])).status_code == 429  # work refuses
    small = await edge.embed(token, "tiny")  # 2 work: fits; the request bucket kept its 4
    assert small.status_code == 200
    assert level(small, "inference") == (3, 2000)  # two used, at one per 1000 s


async def test_work_more_than_a_bucket_holds_is_413(make_edge: Any, mem_issuer: Issuer) -> None:
    edge: EdgeUnderTest = make_edge({"work_limits": {"inference": {"rate": 100, "burst": 500}}})
    resp = await edge.embed(mem_issuer.token("ed-1"), [LONG, LONG])
    assert resp.status_code == 413
    problem = resp.json()
    assert problem["type"] == "urn:outpost:problem:work-too-large"
    assert "750" in problem["detail"] and "500" in problem["detail"]
    assert edge.origin.inference_calls() == []


async def test_an_apps_subjects_share_its_app_buckets(make_edge: Any, mem_issuer: Issuer) -> None:
    edge: EdgeUnderTest = make_edge({"app_rate_limits": {"inference": {"rate": 0.001, "burst": 3}}})
    statuses = [
        (
            await edge.embed(mem_issuer.token("ed-1", sub=f"device-{i}", client_id="shop"), "x")
        ).status_code
        for i in range(5)
    ]
    assert statuses == [200, 200, 200, 429, 429]
    other_app = await edge.embed(mem_issuer.token("ed-1", sub="d", client_id="news"), "x")
    assert other_app.status_code == 200
    assert level(other_app, "app-inference") == (2, 1000)


async def test_a_model_can_have_its_own_work_budget(make_edge: Any, mem_issuer: Issuer) -> None:
    edge: EdgeUnderTest = make_edge(
        {
            "work_limits": {"inference": {"rate": 100, "burst": 100_000}},
            "model_work_limits": {"tiny-embed": {"rate": 1, "burst": 400}},
        }
    )
    resp = await edge.embed(mem_issuer.token("ed-1"), [LONG])
    assert level(resp, "inference-work") == (25, 375)


async def test_the_image_routes_count_images_as_work(make_edge: Any, mem_issuer: Issuer) -> None:
    edge: EdgeUnderTest = make_edge({"work_limits": {"images": {"rate": 1, "burst": 3}}})
    token = mem_issuer.token("ed-1")
    photo = "aGVsbG8="  # base64 bytes standing in for a photo
    body = {"model": "tiny-embed", "input": [photo, photo]}
    first = await edge.client.post(
        "/v1/images/embeddings", json=body, headers={"authorization": f"Bearer {token}"}
    )
    assert first.status_code == 200 and level(first, "images-work") == (1, 2)


class _Broken:
    """A shared store that fails or never answers (as a down or frozen Redis would)."""

    def __init__(self, hang: bool) -> None:
        self.hang = hang

    async def take(self, buckets: Sequence[Bucket], once: Once | None = None) -> Outcome:
        if self.hang:
            await asyncio.Event().wait()
        raise ConnectionError("down")


@pytest.mark.parametrize("hang", [False, True], ids=["down", "frozen"])
@pytest.mark.parametrize(
    ("mode", "statuses"),
    [
        ("local", [200, 200, 429]),  # this process's own buckets: the limit still holds
        ("open", [200, 200, 200]),
        ("closed", [503, 503, 503]),
    ],
)
async def test_when_the_shared_store_cannot_answer_the_fail_mode_decides(
    make_edge: Any, mem_issuer: Issuer, hang: bool, mode: str, statuses: list[int]
) -> None:
    from tests.edge.harness import FakePlatform

    original = FakePlatform.quota_store
    FakePlatform.quota_store = lambda self, config: _Broken(hang)  # type: ignore[method-assign]
    try:
        edge: EdgeUnderTest = make_edge(
            {
                "rate_limits": {"inference": {"rate": 0.001, "burst": 2}},
                "quota_fail_mode": mode,
                "quota_timeout_seconds": 0.05,
            }
        )
    finally:
        FakePlatform.quota_store = original  # type: ignore[method-assign]
    token = mem_issuer.token("ed-1", sub=f"fail-{mode}")
    got = [(await edge.embed(token, f"x{i}")).status_code for i in range(3)]
    assert got == statuses
    assert edge.metric("outpost_edge_quota_store_errors_total", mode=mode) == 3
