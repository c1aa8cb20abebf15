"""OpenTelemetry tracing for the origin: W3C trace context in, spans out over OTLP/HTTP.

Off by default (`OUTPOST_TRACING_ENABLED=true` turns it on). Off, nothing here creates a span:
the middleware only reads the trace id of an incoming `traceparent` (or makes one up) for its
log lines and problem bodies. On, the origin continues the caller's trace:

    POST /v1/embeddings            server span (middleware): route, status, model name/version
    ├── tokenize                   model, inputs, tokens
    ├── queue                      wait for the batch; links to each batch the request rode in
    └── batch                      in the trace of its first sampled request; links to them all
        └── engine.run             the ONNX Runtime call (worker thread)
    token.issue -> vault <op>      token issuance and the Vault calls it makes

Sampling is parent-based: a caller's `traceparent` decides (the edge samples once per trace);
a request without one starts a trace recorded with probability `sample_ratio`. Child spans are
only made under a recording parent, so an unsampled request costs one non-recording span.
Attributes carry names, counts and sizes, never a secret or input text.

The tracer is process-wide (OpenTelemetry's context is): `start()` at app start-up, `stop()`
flushes at shutdown. The batcher knows nothing of OpenTelemetry: it gets a `BatchTracer` hook.
Another transport (gRPC) continues traces the same way as the HTTP middleware: a `request_span`
from the call's metadata (`traceparent`/`tracestate` keys) around the handler, `finish()` after.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from origin import __version__

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

log = logging.getLogger("origin.tracing")
R = TypeVar("R")
P = ParamSpec("P")

# Attribute names (OpenTelemetry semantic conventions where one exists).
MODEL_NAME = "outpost.model.name"
MODEL_VERSION = "outpost.model.version"
REQUEST_ID = "outpost.request_id"


class TracingSettings(BaseSettings):
    """Tracing: OTLP/HTTP export of OpenTelemetry spans (env prefix `OUTPOST_TRACING_`)."""

    model_config = SettingsConfigDict(env_prefix="OUTPOST_TRACING_", extra="ignore")

    enabled: bool = Field(
        False,
        description="Record and export spans. Off, no span is made and the trace id of an "
        "incoming `traceparent` still reaches log lines and problem bodies.",
    )
    endpoint: str = Field(
        "http://127.0.0.1:4318/v1/traces",
        description="OTLP/HTTP traces URL (a collector's `/v1/traces`). Headers, TLS and "
        "compression follow the standard `OTEL_EXPORTER_OTLP_TRACES_*` variables.",
    )
    sample_ratio: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Share of new traces recorded when a request has no `traceparent`; a "
        "caller's sampled flag decides otherwise (parent-based).",
    )
    service_name: str = Field("outpost-origin", description="`service.name` of the spans.")
    export_timeout: float = Field(
        5.0, gt=0, le=60, description="Seconds one export (with retries) may take."
    )


# ------------------------------------------------------------------ process-wide state
_tracer: Tracer | None = None
_provider: TracerProvider | None = None
_flush_seconds = 6.0


def start(settings: TracingSettings, **resource: str) -> bool:
    """Set up the tracer when `settings.enabled` and none runs yet; True when this call did
    (the caller then owns `stop()`)."""
    global _tracer, _provider, _flush_seconds
    if not settings.enabled or _tracer is not None:
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBasedTraceIdRatio

    provider = TracerProvider(
        sampler=ParentBasedTraceIdRatio(settings.sample_ratio),
        shutdown_on_exit=False,  # stop() flushes, within a bound
        resource=Resource.create(
            {
                "service.name": settings.service_name,
                "service.version": __version__,
                "service.instance.id": f"{os.uname().nodename}:{os.getpid()}",
                **resource,
            }
        ),
    )
    exporter = OTLPSpanExporter(endpoint=settings.endpoint, timeout=settings.export_timeout)
    # Bounded queue, exports in a background thread: a slow or dead collector drops spans,
    # it never slows a request.
    provider.add_span_processor(BatchSpanProcessor(exporter))
    # Malformed trace headers are a caller's mistake, not worth a warning line each.
    for name in ("opentelemetry.trace.propagation.tracecontext", "opentelemetry.trace.span"):
        logging.getLogger(name).setLevel(logging.ERROR)
    _provider = provider
    _tracer = provider.get_tracer("outpost.origin", __version__)
    _flush_seconds = settings.export_timeout + 1
    log.info(
        "tracing on: OTLP/HTTP to %s, sampling %.3g of new traces",
        _without_userinfo(settings.endpoint),
        settings.sample_ratio,
    )
    return True


def _without_userinfo(url: str) -> str:
    """The URL for a log line: credentials in it (user:password@) are left out."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def stop() -> None:
    """Turn tracing off and export what is buffered, waiting at most about one export timeout.

    With a collector that does not answer, each remaining batch could take the whole export
    timeout; the flush goes on in a daemon thread, so shutdown does not wait for all of them.
    """
    global _tracer, _provider
    provider, _provider, _tracer = _provider, None, None
    if provider is not None:
        flusher = threading.Thread(target=provider.shutdown, name="otel-flush", daemon=True)
        flusher.start()
        flusher.join(_flush_seconds)


def enabled() -> bool:
    return _tracer is not None


# ------------------------------------------------------------------ trace ids without the SDK
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}(?:-|$)")


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id of a valid W3C `traceparent` value, else None (no SDK needed)."""
    if not traceparent:
        return None
    match = _TRACEPARENT.match(traceparent)
    if match is None or match[1] == "ff" or match[2] == "0" * 32:
        return None
    if match[1] == "00" and len(traceparent) != 55:
        return None
    return match[2]


def new_trace_id() -> str:
    return os.urandom(16).hex()


# ------------------------------------------------------------------ request (server) spans
class RequestSpan:
    """The server span of one request, made current for the handler while it runs."""

    __slots__ = ("_token", "method", "span", "trace_id")

    def __init__(
        self, headers: Iterable[tuple[bytes | str, bytes | str]], method: str, path: str
    ) -> None:
        from opentelemetry import context as otel_context
        from opentelemetry import trace
        from opentelemetry.propagate import extract

        assert _tracer is not None
        carrier: dict[str, str] = {}
        for key, value in headers:
            name = key.decode("latin-1") if isinstance(key, bytes) else key
            if name in ("traceparent", "tracestate"):
                text = value.decode("latin-1") if isinstance(value, bytes) else value
                carrier[name] = f"{carrier[name]},{text}" if name in carrier else text
        parent = extract(carrier) if carrier else None
        self.method = method
        self.span = _tracer.start_span(
            method,
            context=parent,
            kind=trace.SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": path},
        )
        self.trace_id = format(self.span.get_span_context().trace_id, "032x")
        self._token = otel_context.attach(trace.set_span_in_context(self.span))

    def finish(
        self,
        *,
        route: str,
        status: int,
        request_id: str,
        model: tuple[str, str] | None,
    ) -> None:
        from opentelemetry import context as otel_context
        from opentelemetry.trace import StatusCode

        span = self.span
        if span.is_recording():
            span.update_name(f"{self.method} {route}")
            span.set_attribute("http.route", route)
            span.set_attribute("http.response.status_code", status)
            span.set_attribute(REQUEST_ID, request_id)
            if model is not None:
                span.set_attribute(MODEL_NAME, model[0])
                span.set_attribute(MODEL_VERSION, model[1])
            if status >= 500:
                span.set_attribute("error.type", str(status))
                span.set_status(StatusCode.ERROR)
        span.end()
        otel_context.detach(self._token)


def request_span(
    headers: Iterable[tuple[bytes | str, bytes | str]], method: str, path: str
) -> RequestSpan | None:
    """A server span for this request when tracing is on (None when off)."""
    return RequestSpan(headers, method, path) if _tracer is not None else None


# ------------------------------------------------------------------ child spans
def _recording_parent() -> Span | None:
    from opentelemetry import trace

    span = trace.get_current_span()
    return span if span.is_recording() else None


def _failed(span: Span, exc: BaseException) -> None:
    """Sum an error up by its type only: exception messages may quote client input."""
    from opentelemetry.trace import StatusCode

    span.set_attribute("error.type", type(exc).__name__)
    span.set_status(StatusCode.ERROR, type(exc).__name__)


@contextlib.contextmanager
def _current_child(
    tracer: Tracer, name: str, attributes: Mapping[str, Any], context: Context | None = None
) -> Iterator[Span]:
    with tracer.start_as_current_span(
        name,
        context=context,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except BaseException as exc:
            _failed(span, exc)
            raise


_NO_SPAN: contextlib.nullcontext[None] = contextlib.nullcontext(None)


def child_span(
    name: str, attributes: Mapping[str, Any] | None = None
) -> contextlib.AbstractContextManager[Span | None]:
    """A child of the current recording span (yielded), or a shared no-op yielding None.

    For work inside a traced request: tokenization, token issuance, Vault calls. Set costly
    attributes on the yielded span (when not None) rather than building them up front.
    """
    if _tracer is None or _recording_parent() is None:
        return _NO_SPAN
    return _current_child(_tracer, name, attributes or {})


def traced(name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator: the function runs in `child_span(name)` (a no-op when not traced)."""

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def inner(*args: P.args, **kwargs: P.kwargs) -> R:
            with child_span(name):
                return fn(*args, **kwargs)

        return inner

    return wrap


def tag(key: str, value: str | int | float | bool) -> None:
    """Set one attribute on the current span when it records (never pass input text)."""
    if _tracer is not None:
        span = _recording_parent()
        if span is not None:
            span.set_attribute(key, value)


def tag_model(name: str, version: int) -> None:
    """Name the model and version on the current span (the request's, in a handler)."""
    if _tracer is not None:
        tag(MODEL_NAME, name)
        tag(MODEL_VERSION, str(version))


# ------------------------------------------------------------------ the batcher's hook
class _Ticket:
    """One request's wait in a batch queue: its `queue` span and how many items still wait."""

    __slots__ = ("parent", "remaining", "span")

    def __init__(self, span: Span, parent: Any, remaining: int) -> None:
        self.span = span
        self.parent = parent
        self.remaining = remaining


class _Batch:
    __slots__ = ("context", "span")

    def __init__(self, span: Span, context: Context) -> None:
        self.span = span
        self.context = context


class OtelBatchTracer:
    """`origin.engine.batcher.BatchTracer` with OpenTelemetry spans for one model version."""

    def __init__(self, tracer: Tracer, model: str, version: int) -> None:
        self._tracer = tracer
        self._attrs = {MODEL_NAME: model, MODEL_VERSION: str(version)}

    def enqueue(self, items: int) -> _Ticket | None:
        parent = _recording_parent()
        if parent is None:
            return None
        span = self._tracer.start_span(
            "queue", attributes={**self._attrs, "outpost.batch.items": items}
        )
        return _Ticket(span, parent.get_span_context(), items)

    def begin(self, tickets: Sequence[_Ticket], items: Sequence[Any]) -> _Batch:
        from opentelemetry import trace
        from opentelemetry.trace import Link, NonRecordingSpan

        counts: dict[_Ticket, int] = {}
        for ticket in tickets:
            counts[ticket] = counts.get(ticket, 0) + 1
        first = tickets[0]
        costs = [getattr(it, "cost", 1) for it in items]
        batch = self._tracer.start_span(
            "batch",
            context=trace.set_span_in_context(NonRecordingSpan(first.parent)),
            links=[Link(t.span.get_span_context()) for t in counts],
            attributes={
                **self._attrs,
                "outpost.batch.size": len(items),
                "outpost.batch.requests": len(counts),
                "outpost.batch.padded_tokens": max(costs) * len(costs),
            },
        )
        linked = batch.get_span_context()
        for ticket, n in counts.items():
            if ticket.remaining > 0:
                ticket.span.add_link(linked)
                ticket.remaining -= n
                if ticket.remaining <= 0:
                    ticket.span.end()
        return _Batch(batch, trace.set_span_in_context(batch))

    def run(self, batch: _Batch, fn: Callable[[Sequence[Any]], R], items: Sequence[Any]) -> R:
        """Run `fn(items)` (in the worker thread) inside an `engine.run` span."""
        with _current_child(self._tracer, "engine.run", self._attrs, batch.context):
            return fn(items)

    def end(self, batch: _Batch, error: BaseException | None) -> None:
        if error is not None:
            _failed(batch.span, error)
        batch.span.end()

    def abandon(self, ticket: _Ticket) -> None:
        """The request stopped waiting (cancelled, or the model unloaded)."""
        if ticket.remaining > 0:
            ticket.remaining = 0
            ticket.span.set_attribute("error.type", "abandoned")
            ticket.span.end()


def batch_tracer(model: str, version: int) -> OtelBatchTracer | None:
    """The batcher hook for a model version, or None when tracing is off."""
    return OtelBatchTracer(_tracer, model, version) if _tracer is not None else None
