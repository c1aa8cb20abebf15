"""Forwarding that survives sick origins: a frozen origin's requests are hedged on another
origin and the frozen one is ejected, a broken pooled connection is tried again without blaming
the origin, and an attempt gives up after the read timeout derived from recent latency.
In-process (tests/edge/harness.py)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.edge.conftest import Issuer
from tests.edge.harness import EdgeUnderTest, FakeOrigin

UNLIMITED = {"rate_limits": {"default": {"rate": 100000, "burst": 100000}}}
# Enough retry budget for every request in flight when an origin freezes (the budget itself is
# tested below).
BUDGET = {"retry_min_per_window": 100}


@pytest.fixture(scope="module")
def token(mem_issuer: Issuer) -> str:
    return mem_issuer.token("ed-1", sub="forwarding-user")


async def _warm(edge: EdgeUnderTest, token: str, n: int = 40) -> None:
    """Enough answers for the edge to know the model's latency (fresh texts: misses)."""
    for i in range(n):
        assert (await edge.embed(token, f"warm {i} {time.monotonic()}")).status_code == 200


async def test_requests_held_by_a_frozen_origin_are_answered_by_the_other(
    make_edge: Any, token: str
) -> None:
    a, b = FakeOrigin("http://a.test"), FakeOrigin("http://b.test")
    edge: EdgeUnderTest = make_edge({**UNLIMITED, **BUDGET}, origins=[a, b])
    await _warm(edge, token)
    a.frozen = True
    started = time.monotonic()
    answers = await asyncio.gather(*(edge.embed(token, f"during {i}") for i in range(40)))
    took = time.monotonic() - started
    assert [r.status_code for r in answers] == [200] * 40
    assert edge.metric("outpost_edge_hedges_total") >= 1
    # No request waited for the freeze (or for the 1 s read timeout): the hedges answered.
    assert took < edge.config.read_timeout_floor_seconds
    # Losing hedge after hedge, the frozen origin is ejected; the healthy one never is.
    assert edge.metric("outpost_edge_ejections_total", origin=a.url) >= 1
    assert edge.metric("outpost_edge_ejections_total", origin=b.url) == 0


async def test_hedges_come_out_of_the_retry_budget(make_edge: Any, token: str) -> None:
    a, b = FakeOrigin("http://a.test"), FakeOrigin("http://b.test")
    edge: EdgeUnderTest = make_edge(
        {**UNLIMITED, "retry_min_per_window": 3, "retry_budget_ratio": 0.0}, origins=[a, b]
    )
    await _warm(edge, token)
    a.frozen = True
    await asyncio.gather(*(edge.embed(token, f"budget {i}") for i in range(20)))
    assert edge.metric("outpost_edge_hedges_total") <= 3


async def test_a_broken_pooled_connection_is_tried_again_and_not_held_against_the_origin(
    make_edge: Any, token: str
) -> None:
    only = FakeOrigin("http://only.test")
    edge: EdgeUnderTest = make_edge({"eject_after_failures": 1}, origins=[only])
    await _warm(edge, token, 1)
    await edge.platform.settle()  # the health round the first request started
    only.disconnects = 1
    resp = await edge.embed(token, "stale connection")
    assert resp.status_code == 200
    assert edge.metric("outpost_edge_origin_attempts_total", outcome="disconnected") == 1
    assert edge.metric("outpost_edge_ejections_total") == 0
    assert edge.app.pool.origins[0].consecutive_failures == 0


async def test_a_connection_broken_twice_counts_as_a_failure(make_edge: Any, token: str) -> None:
    a, b = FakeOrigin("http://a.test"), FakeOrigin("http://b.test")
    edge: EdgeUnderTest = make_edge({"eject_after_failures": 5}, origins=[a, b])
    await _warm(edge, token, 1)
    await edge.platform.settle()
    a.disconnects = b.disconnects = 2
    resp = await edge.embed(token, "broken twice")
    assert resp.status_code in (200, 502)
    failures = sum(o.consecutive_failures for o in edge.app.pool.origins)
    assert failures >= 1
    assert edge.metric("outpost_edge_ejections_total") == 0  # not ejected for it at once


async def test_an_unreachable_origin_is_ejected_at_once(make_edge: Any) -> None:
    a, b = FakeOrigin("http://a.test"), FakeOrigin("http://b.test")
    a.down = True
    edge: EdgeUnderTest = make_edge(
        {"origins": [{"url": a.url, "weight": 1000}, {"url": b.url, "weight": 0.001}]}, [a, b]
    )
    pool = edge.app.pool  # straight to the pool: no health round runs first
    resp, origin = await pool.forward("primary", "GET", "/v1/models", {}, None, True)
    assert (resp.status, origin.url) == (200, b.url)
    assert edge.metric("outpost_edge_ejections_total", origin=a.url) == 1
    assert not pool.origins[0].available(edge.platform.monotonic())


async def test_with_one_frozen_origin_the_answer_is_504_after_the_read_timeout(
    make_edge: Any, token: str
) -> None:
    only = FakeOrigin("http://only.test")
    edge: EdgeUnderTest = make_edge(
        {**UNLIMITED, "read_timeout_floor_seconds": 0.3, "request_timeout_seconds": 30}, [only]
    )
    await _warm(edge, token)
    only.frozen = True
    started = time.monotonic()
    resp = await edge.embed(token, "nobody answers")
    assert resp.status_code == 504
    assert resp.headers["content-type"] == "application/problem+json"
    assert time.monotonic() - started < 5  # the read timeout, far from the 30 s request timeout


async def test_the_read_timeout_grows_with_the_work_asked(make_edge: Any, token: str) -> None:
    edge: EdgeUnderTest = make_edge(UNLIMITED)
    await _warm(edge, token)
    edge.platform.read_timeouts.clear()
    await edge.embed(token, "one input")
    await edge.embed(token, [f"input {i}" for i in range(64)])
    one, many = edge.platform.read_timeouts[-2:]
    assert one is not None and many is not None and many > one
    assert many <= edge.config.request_timeout_seconds


async def test_a_request_that_is_not_idempotent_is_neither_hedged_nor_retried(
    make_edge: Any,
) -> None:
    a, b = FakeOrigin("http://a.test"), FakeOrigin("http://b.test")
    a.status = b.status = 503
    edge: EdgeUnderTest = make_edge(UNLIMITED, origins=[a, b])
    resp = await edge.client.post("/oauth/token", data={"grant_type": "client_credentials"})
    assert resp.status_code == 503
    assert len(a.inference_calls()) + len(b.inference_calls()) == 1
