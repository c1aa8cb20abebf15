"""Helpers for tests that read real spans back from a real OTLP/HTTP receiver.

The receiver (`outpost.monitoring.receiver.Receiver`) is a real HTTP server decoding the
protobuf exports that the OpenTelemetry SDK sends. Tests send a request with their own
`traceparent`, then wait for the spans of that trace id. Written for the origin; a test through
the edge extends it by expecting the edge's server span as the origin span's parent (see
`expect_child_of`).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from outpost.monitoring.receiver import Receiver, SpanRecord


@dataclass(frozen=True)
class SentTrace:
    """A W3C trace context a test sends: the trace id and the caller's span id."""

    trace_id: str
    parent_id: str

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.parent_id}-01"

    @property
    def headers(self) -> dict[str, str]:
        return {"traceparent": self.traceparent, "tracestate": "outpost-test=1"}


def new_trace() -> SentTrace:
    return SentTrace(secrets.token_hex(16), secrets.token_hex(8))


def post_traced(
    url: str, headers_extra: dict[str, str] | None = None, **kwargs: Any
) -> tuple[SentTrace, httpx.Response]:
    """POST with a fresh sampled `traceparent` (and `tracestate`) beside `headers_extra`;
    returns both."""
    sent = new_trace()
    headers = {**sent.headers, **(headers_extra or {})}
    return sent, httpx.post(url, headers=headers, timeout=30, **kwargs)


def wait_for_trace(
    receiver: Receiver, trace_id: str, names: Iterable[str], timeout: float = 30.0
) -> list[SpanRecord]:
    """The spans of `trace_id` once every name in `names` has arrived."""
    wanted = set(names)

    def complete(spans: list[SpanRecord]) -> bool:
        return wanted <= {s.name for s in spans if s.trace_id == trace_id}

    spans = receiver.store.wait_for(complete, timeout)
    return [s for s in spans if s.trace_id == trace_id]


def one(spans: Iterable[SpanRecord], name: str) -> SpanRecord:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, f"expected one {name!r} span, got {[s.name for s in spans]}"
    return found[0]


def expect_child_of(child: SpanRecord, parent: SpanRecord | str) -> None:
    parent_id = parent if isinstance(parent, str) else parent.span_id
    assert child.parent_span_id == parent_id, (
        f"{child.name} should be a child of {parent_id}, its parent is {child.parent_span_id}"
    )


def linked(span: SpanRecord, target: SpanRecord) -> bool:
    return {"trace_id": target.trace_id, "span_id": target.span_id} in span.links


def all_text(spans: Iterable[SpanRecord]) -> str:
    """Every name, attribute key and value and resource attribute, as one string to search."""
    parts: list[str] = []
    for s in spans:
        parts.append(s.name)
        for attrs in (s.attributes, s.resource):
            for key, value in attrs.items():
                parts.append(f"{key}={value}")
    return "\n".join(parts)


def assert_nothing_leaks(spans: Iterable[SpanRecord], needles: dict[str, str]) -> None:
    """No secret and no input text in any span name or attribute."""
    text = all_text(spans)
    assert text, "no spans to check"
    for what, value in needles.items():
        assert value and value not in text, f"{what} appears in span attributes"
