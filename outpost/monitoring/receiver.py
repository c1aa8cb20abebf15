"""A small OTLP/HTTP trace receiver: the local stand-in for a trace viewer.

Jaeger, Grafana Tempo and the OpenTelemetry Collector cannot be installed from PyPI or Debian, so
`outpost up --monitor` runs this instead. It decodes real OTLP/HTTP protobuf exports (the
`opentelemetry-proto` messages every SDK sends to `POST /v1/traces`), keeps the most recent
traces in memory, appends every span to a JSON-lines file, prints one line per server span,
and answers:

    GET /traces              recent traces: id, root span, span count
    GET /traces/<trace_id>   every span of one trace (JSON)

`outpost trace <trace_id>` prints one trace as a tree. Run alone:
`python -m outpost.monitoring.receiver --port 4318`.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import signal
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

MAX_BODY = 16 << 20  # an SDK batch of 512 spans is far below this
KINDS = {v: k.removeprefix("SPAN_KIND_").lower() for k, v in Span.SpanKind.items()}
STATUSES = {v: k.removeprefix("STATUS_CODE_").lower() for k, v in Status.StatusCode.items()}


@dataclass
class SpanRecord:
    """One received span, decoded from OTLP (ids as lowercase hex)."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: str
    service: str
    start_ns: int
    end_ns: int
    status: str
    attributes: dict[str, Any] = field(default_factory=dict)
    links: list[dict[str, str]] = field(default_factory=list)
    resource: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


def _value(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, which)


def decode_export(body: bytes) -> list[SpanRecord]:
    """Every span of one OTLP/HTTP protobuf export body (raises on malformed protobuf)."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    out = []
    for rs in request.resource_spans:
        resource = {kv.key: _value(kv.value) for kv in rs.resource.attributes}
        service = str(resource.get("service.name", "unknown"))
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append(
                    SpanRecord(
                        trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(),
                        parent_span_id=s.parent_span_id.hex(),
                        name=s.name,
                        kind=KINDS.get(s.kind, str(s.kind)),
                        service=service,
                        start_ns=s.start_time_unix_nano,
                        end_ns=s.end_time_unix_nano,
                        status=STATUSES.get(s.status.code, str(s.status.code)),
                        attributes={kv.key: _value(kv.value) for kv in s.attributes},
                        links=[
                            {"trace_id": ln.trace_id.hex(), "span_id": ln.span_id.hex()}
                            for ln in s.links
                        ],
                        resource=resource,
                    )
                )
    return out


class TraceStore:
    """The most recent `max_traces` traces, by trace id (thread-safe)."""

    def __init__(self, max_traces: int = 2000) -> None:
        self._traces: OrderedDict[str, list[SpanRecord]] = OrderedDict()
        self._max = max_traces
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    def add(self, spans: Iterable[SpanRecord]) -> None:
        with self._lock:
            for span in spans:
                self._traces.setdefault(span.trace_id, []).append(span)
                self._traces.move_to_end(span.trace_id)
            while len(self._traces) > self._max:
                self._traces.popitem(last=False)
            self._changed.notify_all()

    def trace(self, trace_id: str) -> list[SpanRecord]:
        with self._lock:
            return list(self._traces.get(trace_id, ()))

    def spans(self) -> list[SpanRecord]:
        with self._lock:
            return [s for spans in self._traces.values() for s in spans]

    def summary(self) -> list[dict[str, Any]]:
        with self._lock:
            items = list(self._traces.items())
        out = []
        for trace_id, spans in reversed(items):
            ids = {s.span_id for s in spans}
            roots = [s for s in spans if s.parent_span_id not in ids]
            root = min(roots or spans, key=lambda s: s.start_ns)
            out.append({"trace_id": trace_id, "root": root.name, "spans": len(spans)})
        return out

    def wait_for(
        self, predicate: Callable[[list[SpanRecord]], bool], timeout: float
    ) -> list[SpanRecord]:
        """Block until `predicate(all spans)` holds (returns them) or raise TimeoutError."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                spans = [s for spans in self._traces.values() for s in spans]
                if predicate(spans):
                    return spans
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"spans did not arrive in {timeout}s ({len(spans)} so far)")
                self._changed.wait(left)


def span_line(span: SpanRecord, count: int) -> str:
    """The console line for a server span: where to look next is its trace id."""
    attrs = span.attributes
    model = attrs.get("outpost.model.name")
    version = attrs.get("outpost.model.version")
    status = attrs.get("http.response.status_code", "")
    extra = f" model={model} v{version}" if model else ""
    return (
        f"trace {span.trace_id} {span.service} {span.name} {status} "
        f"{span.duration_ms:.1f} ms{extra} ({count} spans so far)"
    )


def format_tree(spans: list[SpanRecord]) -> str:
    """One trace as an indented tree (children under parents, by start time), with links."""
    by_parent: dict[str, list[SpanRecord]] = {}
    ids = {s.span_id for s in spans}
    for s in sorted(spans, key=lambda s: s.start_ns):
        parent = s.parent_span_id if s.parent_span_id in ids else ""
        by_parent.setdefault(parent, []).append(s)
    t0 = min((s.start_ns for s in spans), default=0)
    lines: list[str] = []

    def walk(parent: str, depth: int) -> None:
        for s in by_parent.get(parent, []):
            keys = sorted(k for k in s.attributes if k.startswith(("outpost.", "http.", "vault.")))
            attrs = " ".join(f"{k}={s.attributes[k]}" for k in keys)
            links = "".join(f" -> link {ln['span_id']}" for ln in s.links)
            flag = " ERROR" if s.status == "error" else ""
            lines.append(
                f"{'  ' * depth}{s.name} [{s.service}] +{(s.start_ns - t0) / 1e6:.1f} ms "
                f"{s.duration_ms:.2f} ms{flag} span={s.span_id}{links}  {attrs}".rstrip()
            )
            walk(s.span_id, depth + 1)

    walk("", 0)
    return "\n".join(lines)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet by design
        pass

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def do_POST(self) -> None:
        if self.path.split("?")[0] != "/v1/traces":
            return self._json(404, {"error": "POST OTLP traces to /v1/traces"})
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip()
        if ctype != "application/x-protobuf":
            return self._json(415, {"error": "send OTLP protobuf (application/x-protobuf)"})
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            return self._json(413, {"error": f"body must be 0..{MAX_BODY} bytes"})
        body = self.rfile.read(length)
        try:
            if self.headers.get("Content-Encoding", "").lower() == "gzip":
                body = gzip.decompress(body)
            spans = decode_export(body)
        except Exception as exc:  # malformed protobuf or gzip: the sender's mistake
            return self._json(400, {"error": f"undecodable export: {type(exc).__name__}"})
        self.server.received(spans)
        self._send(200, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")

    def do_GET(self) -> None:
        path = self.path.split("?")[0].rstrip("/")
        store = self.server.store
        if path == "/traces":
            return self._json(200, store.summary())
        if path.startswith("/traces/"):
            spans = store.trace(path.removeprefix("/traces/").lower())
            if not spans:
                return self._json(404, {"error": "no such trace (yet)"})
            return self._json(200, [asdict(s) for s in spans])
        if path in ("", "/healthz"):
            return self._json(200, {"status": "ok", "traces": len(store.summary())})
        self._json(404, {"error": "GET /traces or /traces/<trace_id>"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        store: TraceStore,
        on_spans: Callable[[list[SpanRecord]], None] | None,
    ) -> None:
        super().__init__(address, _Handler)
        self.store = store
        self._on_spans = on_spans

    def received(self, spans: list[SpanRecord]) -> None:
        self.store.add(spans)
        if self._on_spans is not None:
            self._on_spans(spans)


class Receiver:
    """The receiver on a thread: `with Receiver() as r: ... r.store.wait_for(...)`."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        store: TraceStore | None = None,
        on_spans: Callable[[list[SpanRecord]], None] | None = None,
    ) -> None:
        self.store = store or TraceStore()
        self._server = _Server((host, port), self.store, on_spans)
        self.port = self._server.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self.traces_url = f"{self.url}/v1/traces"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def shutdown(self) -> None:
        """Make `serve_forever` return (from another thread)."""
        self._server.shutdown()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _printer(store: TraceStore, jsonl: Path | None) -> Callable[[list[SpanRecord]], None]:
    lock = threading.Lock()

    def on_spans(spans: list[SpanRecord]) -> None:
        with lock:
            if jsonl is not None:
                with jsonl.open("a") as fh:
                    fh.writelines(json.dumps(asdict(s)) + "\n" for s in spans)
            for s in spans:
                if s.kind == "server":
                    print(span_line(s, len(store.trace(s.trace_id))), flush=True)

    return on_spans


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m outpost.monitoring.receiver", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4318, help="OTLP/HTTP's usual port")
    parser.add_argument("--jsonl", type=Path, help="append every span here as a JSON line")
    parser.add_argument(
        "--linger",
        type=float,
        default=3.0,
        help="seconds to keep receiving after SIGTERM (services stopping with it flush spans)",
    )
    args = parser.parse_args(argv)
    store = TraceStore()
    try:
        receiver = Receiver(args.host, args.port, store=store, on_spans=_printer(store, args.jsonl))
    except OSError as exc:
        sys.exit(f"trace receiver: cannot listen on {args.host}:{args.port}: {exc.strerror}")
    print(f"OTLP/HTTP trace receiver on {receiver.traces_url}", flush=True)
    signal.signal(
        signal.SIGTERM, lambda *_: threading.Timer(args.linger, receiver.shutdown).start()
    )
    with contextlib.suppress(KeyboardInterrupt):
        receiver.serve_forever()


if __name__ == "__main__":
    main()
