"""One trace from the phone through the edge to the batch that ran it, read back from a real
OTLP/HTTP receiver: a real `python -m edge` (exporting its spans over OTLP) in front of a real
origin (tracing on, following the edge's sampling), tiny real ONNX model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from outpost.monitoring.receiver import Receiver
from tests.edge.conftest import Issuer, Proc, issuer_settings, start_edge
from tests.origin.conftest import OriginProcess, install_version, tiny_src  # noqa: F401
from tests.traces import (
    assert_nothing_leaks,
    expect_child_of,
    linked,
    one,
    post_traced,
    wait_for_trace,
)

INPUT_TEXT = "a phone's private words 4e1d"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture(scope="module")
def traced(
    tiny_src: Path,  # noqa: F811
    receiver: Receiver,
    issuer: Issuer,
    oidc_issuer: Issuer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Proc, OriginProcess]]:
    root = tmp_path_factory.mktemp("traced-edge")
    install_version(tiny_src / "emb", 1, root / "models" / "emb", 1)
    origin = OriginProcess(
        root / "models",
        root / "origin.log",
        OUTPOST_TRACING_ENABLED="true",
        OUTPOST_TRACING_ENDPOINT=receiver.traces_url,
        OUTPOST_TRACING_SAMPLE_RATIO="0",  # parent-based: the edge decides
        OTEL_BSP_SCHEDULE_DELAY="100",
    ).start()
    edge = start_edge(
        {
            "origins": [{"url": origin.url}],
            "issuers": issuer_settings(issuer, oidc_issuer),
            "trace_sample_ratio": 1,
            "trace_export_endpoint": receiver.traces_url,
        },
        root,
    )
    try:
        yield edge, origin
    finally:
        edge.stop()
        origin.stop()


def test_one_trace_from_the_phone_through_the_edge_to_the_batch(
    traced: tuple[Proc, OriginProcess], receiver: Receiver, issuer: Issuer
) -> None:
    edge, _ = traced
    token = issuer.token("ed-1", sub="traced-phone")
    sent, r = post_traced(
        edge.url + "/v1/embeddings",
        json={"model": "emb", "input": INPUT_TEXT},
        headers_extra={"authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200, r.text
    spans = wait_for_trace(
        receiver, sent.trace_id, ("POST v1-infer", "POST /v1/embeddings", "batch", "engine.run")
    )
    edge_span = one(spans, "POST v1-infer")
    origin_span = one(spans, "POST /v1/embeddings")
    assert edge_span.resource["service.name"] == "outpost-edge"
    expect_child_of(edge_span, sent.parent_id)  # the phone's span
    expect_child_of(origin_span, edge_span)  # the edge's span is the origin's parent
    batch, queue = one(spans, "batch"), one(spans, "queue")
    expect_child_of(one(spans, "engine.run"), batch)
    assert linked(queue, batch)
    assert edge_span.attributes["outpost.model.name"] == "emb"
    assert edge_span.attributes["outpost.model.version"] == "1"
    assert edge_span.attributes["outpost.request_id"] == r.headers["x-request-id"]
    assert_nothing_leaks(spans, {"input text": INPUT_TEXT, "access token": token})
