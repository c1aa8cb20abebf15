"""The edge's own endpoints: public health shows state, never where the origins are; origin
details and metrics only on the internal listener. In-process (tests/edge/harness.py)."""

from __future__ import annotations

from typing import Any

from tests.edge.harness import EdgeUnderTest, FakeOrigin


async def test_public_health_shows_state_without_origin_urls(make_edge: Any) -> None:
    a, b = FakeOrigin("http://10.0.0.5:8101"), FakeOrigin("http://10.0.0.6:8102")
    b.down = True
    edge: EdgeUnderTest = make_edge({}, origins=[a, b])
    await edge.app.pool.check_all()
    resp = await edge.client.get("/healthz")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "ok"
    assert body["pools"] == {"primary": {"healthy": 1, "total": 2}}
    assert "10.0.0" not in resp.text and "origins" not in body
    assert resp.headers["cache-control"] == "no-store"


async def test_internal_health_lists_each_origin_and_its_state(make_edge: Any) -> None:
    a, b = FakeOrigin("http://10.0.0.5:8101"), FakeOrigin("http://10.0.0.6:8102")
    b.down = True
    edge: EdgeUnderTest = make_edge({}, origins=[a, b])
    await edge.app.pool.check_all()
    body = (await edge.internal.get("/healthz")).json()
    states = {o["url"]: o["healthy"] for o in body["origins"]}
    assert states == {a.url: True, b.url: False}


async def test_metrics_are_served_on_the_internal_listener_only(make_edge: Any) -> None:
    edge: EdgeUnderTest = make_edge()
    public = await edge.client.get("/metrics")
    assert public.status_code == 404
    assert public.headers["content-type"] == "application/problem+json"
    internal = await edge.internal.get("/metrics")
    assert internal.status_code == 200
    assert "outpost_edge_requests_total" in internal.text


async def test_the_internal_listener_cannot_be_claimed_with_headers(make_edge: Any) -> None:
    edge: EdgeUnderTest = make_edge()
    for headers in (
        {"host": "edge.test:9901"},
        {"x-forwarded-port": "9901"},
        {"forwarded": "for=127.0.0.1;host=edge.test:9901"},
    ):
        assert (await edge.client.get("/metrics", headers=headers)).status_code == 404
