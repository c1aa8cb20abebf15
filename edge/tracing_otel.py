"""Real OpenTelemetry spans for the local edge (import only from the local runtime, never Workers).

`OtelSpanSink` turns the edge's finished spans (`edge.tracing`) into SDK spans exported over
OTLP/HTTP, keeping the ids `edge.tracing` chose: the origin already received this span's id as
its parent in `traceparent`. The SDK's public `IdGenerator` extension point hands it those ids.
Sampling was decided by `edge.tracing`; only sampled spans are exported.
"""

from __future__ import annotations

import threading

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags

from edge.tracing import SERVICE_NAME, FinishedSpan


class _PresetIds(IdGenerator):
    """Returns the ids set just before `start_span` (under the sink's lock)."""

    def __init__(self) -> None:
        self.trace_id = 0
        self.span_id = 0

    def generate_trace_id(self) -> int:
        return self.trace_id

    def generate_span_id(self) -> int:
        return self.span_id


class OtelSpanSink:
    """`edge.tracing.SpanSink` exporting real spans (OTLP/HTTP, batched in a background thread)."""

    def __init__(
        self,
        endpoint: str,
        *,
        service: str = SERVICE_NAME,
        export_timeout: float = 5.0,
        processor: SpanProcessor | None = None,
    ) -> None:
        self._ids = _PresetIds()
        self._lock = threading.Lock()
        self._provider = TracerProvider(
            sampler=ALWAYS_ON,
            id_generator=self._ids,
            resource=Resource.create({"service.name": service}),
        )
        self._provider.add_span_processor(
            processor
            or BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, timeout=export_timeout))
        )
        self._tracer = self._provider.get_tracer("outpost.edge")

    def emit(self, done: FinishedSpan) -> None:
        s = done.span
        if not s.sampled:
            return
        context = None
        if s.parent_id is not None:
            parent = SpanContext(
                int(s.trace_id, 16),
                int(s.parent_id, 16),
                is_remote=True,
                trace_flags=TraceFlags(TraceFlags.SAMPLED),
            )
            context = trace.set_span_in_context(NonRecordingSpan(parent))
        with self._lock:
            self._ids.trace_id, self._ids.span_id = int(s.trace_id, 16), int(s.span_id, 16)
            span = self._tracer.start_span(
                done.name,
                context=context,
                kind=SpanKind.SERVER,
                attributes=done.attributes,
                start_time=int(s.start * 1e9),
            )
        if done.error:
            span.set_status(StatusCode.ERROR)
        span.end(end_time=int(done.end * 1e9))

    def shutdown(self) -> None:
        """Export what is buffered (bounded by the export timeout)."""
        self._provider.shutdown()
