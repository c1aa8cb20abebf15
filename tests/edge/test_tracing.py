"""W3C Trace Context at the edge (`edge/tracing.py`), its span log lines, the local OTel adapter,
and the module importing inside real Pyodide (as in Workers)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.trace import get_current_span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from edge import tracing
from edge.tracing import (
    ALLOWED_ATTRIBUTES,
    LogSpanSink,
    incoming_context,
    parse_traceparent,
    parse_tracestate,
    sample,
    start_span,
)
from origin.tracing import trace_id_of
from outpost.monitoring.receiver import Receiver
from tests.edge.conftest import run_in_pyodide
from tests.traces import one, wait_for_trace

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{PARENT}-01"


# ------------------------------------------------------------------------------ traceparent
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (VALID, (TRACE, PARENT, 1)),
        (f"00-{TRACE}-{PARENT}-00", (TRACE, PARENT, 0)),
        (f"00-{TRACE}-{PARENT}-09", (TRACE, PARENT, 9)),  # unknown flags kept, not an error
        (f"cc-{TRACE}-{PARENT}-01", (TRACE, PARENT, 1)),  # a later version: first fields
        (f"cc-{TRACE}-{PARENT}-01-what-comes-next", (TRACE, PARENT, 1)),
        (f"cc-{TRACE}-{PARENT}-01what", None),  # a later version must go on with a dash
        (f"00-{TRACE}-{PARENT}-01-extra", None),  # version 00 is exactly 55 characters
        (f"ff-{TRACE}-{PARENT}-01", None),  # version ff is forbidden
        (f"00-{TRACE.upper()}-{PARENT}-01", None),  # upper case hex
        (f"00-{'0' * 32}-{PARENT}-01", None),  # all-zero trace id
        (f"00-{TRACE}-{'0' * 16}-01", None),  # all-zero parent id
        (f"00-{TRACE[:-1]}-{PARENT}0-01", None),  # fields of the wrong width
        (f"00_{TRACE}_{PARENT}_01", None),
        (f"00-{TRACE}-{PARENT}-0x", None),
        (f"0-{TRACE}-{PARENT}-01", None),
        (f" {VALID}", None),
        ("", None),
        (None, None),
        (VALID + "," + VALID, None),  # two header lines joined
    ],
)
def test_traceparent_is_parsed_strictly(value: str | None, expected: object) -> None:
    assert parse_traceparent(value) == expected


# ------------------------------------------------------------------------------ tracestate
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("congo=t61rcWkgMzE", "congo=t61rcWkgMzE"),
        ("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
        (" rojo=1 ,\t,congo=2 ", "rojo=1,congo=2"),  # blanks and empty members dropped
        ("tenant@vendor=x,a-b_c*d/e=y", "tenant@vendor=x,a-b_c*d/e=y"),
        ("value=with space inside", "value=with space inside"),
        ("Rojo=1", None),  # keys are lower case
        ("1rojo=1", None),  # a simple key starts with a letter
        ("rojo=1,rojo=2", None),  # duplicate key
        ("rojo", None),
        ("rojo=", None),  # empty value
        ("rojo=a=b", None),  # '=' is not allowed in a value
        ("tenant@Vendor=x", None),
        (",".join(f"k{i}=v" for i in range(33)), None),  # more than 32 members
        ("", None),
        (None, None),
    ],
)
def test_tracestate_is_parsed_strictly(value: str | None, expected: str | None) -> None:
    assert parse_tracestate(value) == expected


def test_long_tracestate_is_trimmed_big_members_first_then_from_the_end() -> None:
    big = "big=" + "x" * 200
    small = [f"k{i}=" + "v" * 40 for i in range(14)]  # 14 x 44 characters
    out = parse_tracestate(",".join([small[0], big, *small[1:]]))
    assert out is not None and len(out) <= tracing.MAX_TRACESTATE_CHARS
    assert "big=" not in out and out.startswith("k0=") and "k13=" not in out


# ------------------------------------------------------------------------------ spans
def test_a_valid_context_is_continued_with_a_new_edge_span() -> None:
    span = start_span(
        {"traceparent": VALID, "tracestate": "congo=t61"}, now=100.0, sample_ratio=1.0
    )
    assert span.trace_id == TRACE and span.parent_id == PARENT
    assert span.span_id != PARENT and len(span.span_id) == 16
    out = span.outgoing_headers()
    assert out == {"traceparent": f"00-{TRACE}-{span.span_id}-01", "tracestate": "congo=t61"}
    # What the origin (and any OpenTelemetry SDK) reads from it: the edge span as parent.
    assert trace_id_of(out["traceparent"]) == TRACE
    ctx = get_current_span(TraceContextTextMapPropagator().extract(out)).get_span_context()
    assert (format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")) == (TRACE, span.span_id)
    assert ctx.trace_flags.sampled and ctx.is_remote


def test_an_invalid_or_missing_context_starts_a_new_trace_and_drops_tracestate() -> None:
    for headers in ({}, {"traceparent": "garbage", "tracestate": "congo=t61"}):
        span = start_span(headers, now=1.0, sample_ratio=1.0)
        assert span.parent_id is None and span.tracestate is None
        assert parse_traceparent(span.traceparent) == (span.trace_id, span.span_id, 1)
    ids = {start_span({}, now=1.0, sample_ratio=1.0).trace_id for _ in range(50)}
    assert len(ids) == 50


def test_a_clients_sampled_flag_does_not_force_recording() -> None:
    headers = {"traceparent": VALID}
    assert not start_span(headers, now=1.0, sample_ratio=0.0).sampled
    assert start_span(headers, now=1.0, sample_ratio=0.0, trust_sampled=True).sampled
    unsampled = {"traceparent": VALID[:-2] + "00"}
    assert not start_span(unsampled, now=1.0, sample_ratio=1.0, trust_sampled=True).sampled
    span = start_span(headers, now=1.0, sample_ratio=0.0)
    assert span.traceparent.endswith("-00")  # the origin follows the edge: not recorded


def test_sampling_ratio() -> None:
    draws = iter((2 * i + 1) * (1 << 53) // 2000 for i in range(1000))  # evenly spread
    hits = sum(sample(0.25, lambda _bits: next(draws)) for _ in range(1000))
    assert hits == 250
    assert sample(1.0) and not sample(0.0)


def test_span_log_line_is_json_with_only_allowed_attributes() -> None:
    span = start_span({"traceparent": VALID}, now=1_700_000_000.0, sample_ratio=1.0)
    done = span.finish(
        "POST embeddings",
        end=1_700_000_000.25,
        status_code=502,
        attributes={
            "http.request.method": "POST",
            "http.route": "embeddings",
            "outpost.model.name": "minilm",
            "outpost.model.version": "2",
            "outpost.request_id": "r" * 300,
        },
    )
    line = json.loads(done.log_line())
    assert line["trace_id"] == TRACE and line["span_id"] == span.span_id
    assert line["parent_span_id"] == PARENT and line["span"] == "POST embeddings"
    assert line["duration_ms"] == 250.0 and line["status"] == "error"
    assert line["start_time_unix_nano"] == 1_700_000_000 * 10**9
    assert line["attributes"]["http.response.status_code"] == 502
    assert line["attributes"]["error.type"] == "502"
    assert len(line["attributes"]["outpost.request_id"]) == 256
    assert set(line["attributes"]) <= ALLOWED_ATTRIBUTES
    with pytest.raises(ValueError, match="allowlist"):
        span.finish("x", end=2.0, status_code=200, attributes={"authorization": "Bearer x"})
    with pytest.raises(ValueError):
        span.finish("x", end=2.0, status_code=200, attributes={"http.route": ["a"]})  # type: ignore[dict-item]


def test_log_sink_writes_sampled_spans_only() -> None:
    lines: list[str] = []
    sink = LogSpanSink(lines.append)
    sink.emit(start_span({}, now=1.0, sample_ratio=1.0).finish("a", end=2.0, status_code=200))
    sink.emit(start_span({}, now=1.0, sample_ratio=0.0).finish("b", end=2.0, status_code=200))
    assert [json.loads(x)["span"] for x in lines] == ["a"]


def test_incoming_context_reads_lower_case_headers() -> None:
    ctx = incoming_context({"traceparent": VALID, "tracestate": "a=1"})
    assert ctx is not None and ctx.sampled and ctx.tracestate == "a=1"
    assert incoming_context({"tracestate": "a=1"}) is None


# ------------------------------------------------------------------------------ local OTel
@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def test_otel_sink_exports_real_spans_with_the_ids_the_origin_saw(receiver: Receiver) -> None:
    from edge.tracing_otel import OtelSpanSink

    sink = OtelSpanSink(receiver.traces_url)
    try:
        span = start_span({"traceparent": VALID}, now=1_700_000_000.0, sample_ratio=1.0)
        sink.emit(
            span.finish(
                "POST embeddings",
                end=1_700_000_000.5,
                status_code=200,
                attributes={"http.route": "embeddings", "outpost.cache": "MISS"},
            )
        )
        root = start_span({}, now=1_700_000_001.0, sample_ratio=1.0)
        sink.emit(root.finish("GET healthz", end=1_700_000_001.1, status_code=503))
        sink.emit(
            start_span({}, now=1.0, sample_ratio=0.0).finish("unsampled", end=2, status_code=200)
        )
    finally:
        sink.shutdown()  # flushes
    got = one(wait_for_trace(receiver, TRACE, ["POST embeddings"]), "POST embeddings")
    assert (got.span_id, got.parent_span_id, got.kind) == (span.span_id, PARENT, "server")
    assert got.attributes["outpost.cache"] == "MISS" and got.service == "outpost-edge"
    assert got.end_ns - got.start_ns == 500_000_000
    new = one(wait_for_trace(receiver, root.trace_id, ["GET healthz"]), "GET healthz")
    assert new.parent_span_id == "" and new.span_id == root.span_id and new.status == "error"
    assert "unsampled" not in {s.name for s in receiver.store.spans()}


# ------------------------------------------------------------------------------ Pyodide
def test_edge_tracing_imports_and_runs_in_pyodide() -> None:
    code = (
        "from edge.tracing import start_span\n"
        f"span = start_span({{'traceparent': '{VALID}'}}, now=1.0, sample_ratio=1.0)\n"
        "print(span.finish('GET x', end=2.0, status_code=200).log_line())\n"
    )
    printed = run_in_pyodide(code, "edge/__init__.py", "edge/tracing.py")
    line = json.loads(printed.strip().splitlines()[-1])
    assert line["trace_id"] == TRACE and line["parent_span_id"] == PARENT


def test_the_worker_bundle_carries_tracing_but_not_the_otel_adapter(tmp_path: Path) -> None:
    from edge.vendor import vendor

    bundle = vendor(tmp_path / "python_modules")
    assert (bundle / "edge" / "tracing.py").exists()
    assert not (bundle / "edge" / "tracing_otel.py").exists()
