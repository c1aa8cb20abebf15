"""W3C trace context at the edge: continued or started, passed to the origin with the edge's span
as the parent, never trusted to force sampling, and named in the edge's problem bodies.
In-process (tests/edge/harness.py), spans read from the harness's sink."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.edge.conftest import Issuer
from tests.edge.harness import EdgeUnderTest

TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER = "b7ad6b7169203331"
TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])")


@pytest.fixture(scope="module")
def token(mem_issuer: Issuer) -> str:
    return mem_issuer.token("ed-1", sub="trace-user")


def forwarded(edge: EdgeUnderTest) -> tuple[str, str, str]:
    found = TRACEPARENT.fullmatch(edge.origin.inference_calls()[-1].headers["traceparent"])
    assert found is not None
    return found[1], found[2], found[3]


async def test_a_callers_trace_continues_through_the_edge_span(make_edge: Any, token: str) -> None:
    edge: EdgeUnderTest = make_edge({"trace_sample_ratio": 1})
    resp = await edge.embed(
        token, "traced", headers={"traceparent": f"00-{TRACE}-{CALLER}-01", "tracestate": "k=v"}
    )
    assert resp.status_code == 200
    trace_id, parent, flags = forwarded(edge)
    (span,) = edge.platform.spans.finished
    assert trace_id == TRACE and flags == "01"
    assert span.span.parent_id == CALLER  # the caller's span is the edge span's parent
    assert parent == span.span.span_id  # the edge span is the origin's parent
    assert edge.origin.inference_calls()[-1].headers["tracestate"] == "k=v"
    attrs = span.attributes
    assert attrs["http.route"] == "v1-infer" and attrs["outpost.cache"] == "MISS"
    assert attrs["outpost.model.name"] == "tiny-embed" and attrs["outpost.model.version"] == "1"
    assert token not in str(attrs) and "traced" not in str(attrs)  # no secret, no input text


@pytest.mark.parametrize(
    "header",
    [
        None,
        "garbage",
        f"00-{'0' * 32}-{CALLER}-01",  # all-zero trace id: invalid
        f"ff-{TRACE}-{CALLER}-01",  # version ff: invalid
        f"00-{TRACE.upper()}-{CALLER}-01",  # upper-case hex: invalid
    ],
)
async def test_without_a_valid_traceparent_the_edge_starts_a_trace(
    make_edge: Any, token: str, header: str | None
) -> None:
    edge: EdgeUnderTest = make_edge({"trace_sample_ratio": 1})
    headers = {"tracestate": "k=v"} | ({"traceparent": header} if header else {})
    assert (await edge.embed(token, f"new trace {header}", headers=headers)).status_code == 200
    trace_id, _, _ = forwarded(edge)
    assert trace_id != TRACE and trace_id.strip("0")
    assert "tracestate" not in edge.origin.inference_calls()[-1].headers  # dropped with it
    assert edge.platform.spans.finished[-1].span.parent_id is None


async def test_a_client_cannot_force_its_requests_to_be_recorded(
    make_edge: Any, token: str
) -> None:
    edge: EdgeUnderTest = make_edge({"trace_sample_ratio": 0})
    await edge.embed(token, "please record", headers={"traceparent": f"00-{TRACE}-{CALLER}-01"})
    trace_id, _, flags = forwarded(edge)
    assert (trace_id, flags) == (TRACE, "00")  # the trace continues, unsampled
    assert edge.platform.spans.finished == []
    trusting: EdgeUnderTest = make_edge(
        {"trace_sample_ratio": 0, "trace_trust_incoming_sampled": "true"}
    )
    await trusting.embed(token, "recorded", headers={"traceparent": f"00-{TRACE}-{CALLER}-01"})
    assert forwarded(trusting)[2] == "01" and len(trusting.platform.spans.finished) == 1


async def test_problem_bodies_name_the_trace(make_edge: Any) -> None:
    edge: EdgeUnderTest = make_edge()
    resp = await edge.embed(None, "x", headers={"traceparent": f"00-{TRACE}-{CALLER}-01"})
    assert resp.status_code == 401
    assert resp.json()["trace_id"] == TRACE
