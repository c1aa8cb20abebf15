"""The local trace receiver (`outpost up --monitor`): real OTLP exports in, bad bodies refused."""

from __future__ import annotations

import gzip
import socket
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from outpost.monitoring.receiver import Receiver, format_tree
from tests.traces import wait_for_trace

PROTOBUF = {"Content-Type": "application/x-protobuf"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def test_sdk_exports_are_decoded_kept_and_served_as_a_tree(receiver: Receiver) -> None:
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": "svc"}))
    exporter = OTLPSpanExporter(endpoint=receiver.traces_url, compression=Compression.Gzip)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    with (
        tracer.start_as_current_span("parent", attributes={"outpost.n": 3}) as parent,
        tracer.start_as_current_span("child"),
    ):
        pass
    provider.shutdown()
    trace_id = format(parent.get_span_context().trace_id, "032x")
    spans = wait_for_trace(receiver, trace_id, ["parent", "child"], timeout=10)
    assert {s.service for s in spans} == {"svc"}
    tree = format_tree(spans)
    assert tree.index("parent [svc]") < tree.index("  child [svc]")
    listed = httpx.get(f"{receiver.url}/traces", timeout=5).json()
    assert {"trace_id": trace_id, "root": "parent", "spans": 2} in listed
    got = httpx.get(f"{receiver.url}/traces/{trace_id}", timeout=5).json()
    assert {s["name"] for s in got} == {"parent", "child"}
    assert httpx.get(f"{receiver.url}/traces/{'0' * 32}", timeout=5).status_code == 404


@pytest.mark.parametrize(
    ("path", "headers", "body", "status"),
    [
        ("/v1/traces", PROTOBUF, b"\xff\xff\xff not protobuf", 400),
        ("/v1/traces", {**PROTOBUF, "Content-Encoding": "gzip"}, b"not gzip", 400),
        ("/v1/traces", {"Content-Type": "application/json"}, b"{}", 415),
        ("/v1/metrics", PROTOBUF, b"", 404),
    ],
)
def test_bad_exports_are_refused_and_the_receiver_keeps_working(
    receiver: Receiver, path: str, headers: dict[str, str], body: bytes, status: int
) -> None:
    r = httpx.post(receiver.url + path, content=body, headers=headers, timeout=5)
    assert r.status_code == status
    ok = httpx.post(
        receiver.traces_url,
        content=gzip.compress(b""),
        timeout=5,
        headers={**PROTOBUF, "Content-Encoding": "gzip"},
    )
    assert ok.status_code == 200  # an empty export is valid


def test_an_oversized_export_is_refused_before_it_is_read(receiver: Receiver) -> None:
    with socket.create_connection(("127.0.0.1", receiver.port), timeout=5) as sock:
        sock.sendall(
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
            b"Content-Length: 1073741824\r\n\r\nx"
        )
        assert sock.recv(64).startswith(b"HTTP/1.0 413")
