"""Tracing end to end on a real origin process: W3C context in, OTLP/HTTP spans out.

A real origin (`python -m origin`, real OpenBao behind it, tiny real ONNX models) exports to a
real OTLP/HTTP receiver in this process (`outpost.monitoring.receiver`, decoding the protobuf
with opentelemetry-proto). Each test sends its own `traceparent` and reads that trace back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from origin import tracing
from outpost.monitoring.receiver import Receiver, SpanRecord
from tests.conftest import free_port
from tests.origin.conftest import OriginProcess, install_version
from tests.traces import (
    assert_nothing_leaks,
    expect_child_of,
    linked,
    new_trace,
    one,
    post_traced,
    wait_for_trace,
)
from vault.bootstrap import bootstrap
from vault.server import ensure_state, start_dev_vault

# Input text no span may ever carry (a user's words).
INPUT_TEXT = "my private diary entry 7f3c tangerine"
REQUEST_SPANS = ("POST /v1/embeddings", "tokenize", "queue", "batch", "engine.run")


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture(scope="module")
def vault_origin(
    tiny_src: Path, receiver: Receiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[OriginProcess, dict[str, str]]]:
    """An origin with Vault (token issuer on), tracing on at sampling 0, JSON logs.

    Sampling 0 means only a caller's sampled `traceparent` is recorded (parent-based).
    """
    root = tmp_path_factory.mktemp("traced")
    models = root / "models"
    install_version(tiny_src / "emb", 1, models / "emb", 1)
    token = secrets.token_hex(16)
    vault = start_dev_vault(free_port(), token, root / "bao.log")
    try:
        import hvac

        paths = ensure_state(root / "vault")
        boot = bootstrap(hvac.Client(url=vault.addr, token=token, timeout=5), paths=paths)
        proc = OriginProcess(
            models,
            root / "origin.log",
            OUTPOST_VAULT_ADDR=vault.addr,
            OUTPOST_VAULT_APPROLE_FILE=str(paths.origin_approle),
            OUTPOST_TRACING_ENABLED="true",
            OUTPOST_TRACING_ENDPOINT=receiver.traces_url,
            OUTPOST_TRACING_SAMPLE_RATIO="0",
            OUTPOST_ORIGIN_LOG_FORMAT="json",
            OTEL_BSP_SCHEDULE_DELAY="100",  # export every 0.1 s instead of 5 s
        ).start()
        secret_values = {
            "vault root token": token,
            "origin secret_id": boot.secret_id,
            "origin role_id": boot.role_id,
            "demo client secret": str(boot.demo_client_secret),
            "demo api key": str(boot.demo_api_key),
        }
        try:
            yield proc, secret_values
        finally:
            proc.stop()
    finally:
        vault.stop()


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_one_request_is_one_trace_with_batch_links_and_model_attributes(
    vault_origin: tuple[OriginProcess, dict[str, str]], receiver: Receiver
) -> None:
    proc, _ = vault_origin
    sent, r = post_traced(
        proc.url + "/v1/embeddings", json={"model": "emb", "input": [INPUT_TEXT, "a second input"]}
    )
    assert r.status_code == 200, r.text
    spans = wait_for_trace(receiver, sent.trace_id, REQUEST_SPANS)

    server = one(spans, "POST /v1/embeddings")
    assert server.kind == "server"
    expect_child_of(server, sent.parent_id)  # continues the caller's trace
    for name in ("tokenize", "queue"):
        expect_child_of(one(spans, name), server)
    batch, engine = one(spans, "batch"), one(spans, "engine.run")
    expect_child_of(batch, server)  # the batch lives in its first sampled request's trace
    expect_child_of(engine, batch)
    queue = one(spans, "queue")
    assert linked(queue, batch), "the request's queue span links to the batch it rode in"
    assert linked(batch, queue), "the batch links back to every request in it"

    for span in (server, one(spans, "tokenize"), queue, batch, engine):
        assert span.attributes["outpost.model.name"] == "emb", span.name
        assert span.attributes["outpost.model.version"] == "1", span.name
    assert server.attributes["http.route"] == "/v1/embeddings"
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["outpost.request_id"] == r.headers["x-request-id"]
    assert one(spans, "tokenize").attributes["outpost.inputs"] == 2
    assert batch.attributes["outpost.batch.size"] >= 2
    assert server.resource["service.name"] == "outpost-origin"
    assert_nothing_leaks(spans, {"input text": INPUT_TEXT, "a second input": "a second input"})

    # The access log line (JSON on request) carries the same trace id.
    access = [
        line
        for line in _json_lines(proc.logs())
        if line.get("logger") == "origin.access" and line.get("route") == "/v1/embeddings"
    ]
    assert any(
        line["trace_id"] == sent.trace_id and line["request_id"] == r.headers["x-request-id"]
        for line in access
    ), access[-3:]


async def test_concurrent_requests_link_to_the_batches_they_rode_in(
    vault_origin: tuple[OriginProcess, dict[str, str]], receiver: Receiver
) -> None:
    proc, _ = vault_origin
    sent = [new_trace() for _ in range(12)]
    async with httpx.AsyncClient(base_url=proc.url, timeout=30) as client:
        answers = await asyncio.gather(
            *(
                client.post(
                    "/v1/embeddings", json={"model": "emb", "input": f"text {i}"}, headers=t.headers
                )
                for i, t in enumerate(sent)
            )
        )
    assert all(a.status_code == 200 for a in answers)
    queues = {
        t.trace_id: one(wait_for_trace(receiver, t.trace_id, ["queue"]), "queue") for t in sent
    }
    # Every batch span those requests rode in has arrived (some live in other requests' traces).
    wanted = {ln["span_id"] for q in queues.values() for ln in q.links}
    batches: dict[str, SpanRecord] = {
        s.span_id: s
        for s in receiver.store.wait_for(
            lambda spans: wanted <= {s.span_id for s in spans if s.name == "batch"}, 30
        )
        if s.name == "batch" and s.span_id in wanted
    }
    for trace_id, queue in queues.items():
        assert queue.links, f"request {trace_id} has no batch link"
        for ln in queue.links:
            batch = batches[ln["span_id"]]
            assert ln["trace_id"] == batch.trace_id
            assert linked(batch, queue), "batch does not link back to its request"
    assert sum(b.attributes["outpost.batch.requests"] for b in batches.values()) == len(sent)


def test_token_issuance_traces_vault_calls_and_leaks_no_secret(
    vault_origin: tuple[OriginProcess, dict[str, str]], receiver: Receiver
) -> None:
    proc, secret_values = vault_origin
    sent, r = post_traced(
        proc.url + "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "inference"},
        auth=("demo-service", secret_values["demo client secret"]),
    )
    assert r.status_code == 200, r.text
    access_token = r.json()["access_token"]
    spans = wait_for_trace(receiver, sent.trace_id, ["POST /oauth/token", "token.issue"])
    server, issue = one(spans, "POST /oauth/token"), one(spans, "token.issue")
    expect_child_of(issue, server)
    assert issue.attributes["oauth.grant_type"] == "client_credentials"
    spans = wait_for_trace(receiver, sent.trace_id, ["vault transit.sign"])
    sign = one(spans, "vault transit.sign")
    expect_child_of(sign, issue)
    assert sign.attributes["vault.operation"] == "transit.sign"

    # A refused secret is not traced either (nor anything else the client sent).
    wrong = "not-the-secret-" + secrets.token_hex(8)
    refused, r = post_traced(
        proc.url + "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=("demo-service", wrong),
    )
    assert r.status_code == 401
    refused_spans = wait_for_trace(receiver, refused.trace_id, ["token.issue"])
    assert one(refused_spans, "token.issue").status == "error"

    everything = receiver.store.spans()
    assert_nothing_leaks(
        everything, {**secret_values, "access token": access_token, "refused secret": wrong}
    )


def test_problem_body_and_log_carry_the_incoming_trace_id(
    vault_origin: tuple[OriginProcess, dict[str, str]], receiver: Receiver
) -> None:
    proc, _ = vault_origin
    sent, r = post_traced(
        proc.url + "/v1/embeddings", json={"model": "no-such-model", "input": "x"}
    )
    assert r.status_code == 404
    assert r.json()["trace_id"] == sent.trace_id
    server = one(
        wait_for_trace(receiver, sent.trace_id, ["POST /v1/embeddings"]), "POST /v1/embeddings"
    )
    assert server.attributes["http.response.status_code"] == 404
    assert server.status != "error"  # a client mistake is not a server error

    # Not sampled by the caller (flags 00) and sampling 0: nothing recorded, id still logged.
    quiet = new_trace()
    r = httpx.post(
        proc.url + "/v1/embeddings",
        json={"model": "no-such-model", "input": "x"},
        headers={"traceparent": quiet.traceparent[:-2] + "00"},
        timeout=30,
    )
    assert r.json()["trace_id"] == quiet.trace_id


def test_hostile_trace_headers_start_a_new_trace_without_log_noise(
    vault_origin: tuple[OriginProcess, dict[str, str]],
) -> None:
    proc, _ = vault_origin
    hostile = [
        {"traceparent": "00-" + "f" * 32 + "-" + "0" * 16 + "-01"},  # zero parent id
        {"traceparent": "x" * 4000},
        {"traceparent": new_trace().traceparent, "tracestate": "k=" + "v" * 600},
        {"traceparent": new_trace().traceparent, "tracestate": "Bad Key=1,,=,"},
    ]
    for headers in hostile:
        r = httpx.post(
            proc.url + "/v1/embeddings",
            json={"model": "no-such-model", "input": "x"},
            headers=headers,
            timeout=30,
        )
        assert r.status_code == 404
        trace_id = r.json()["trace_id"]
        assert len(trace_id) == 32 and int(trace_id, 16) and trace_id != "f" * 32
    noisy = [
        line
        for line in _json_lines(proc.logs())
        if line["logger"].startswith("opentelemetry") and line["level"] != "debug"
    ]
    assert noisy == []


def test_a_frozen_collector_never_blocks_requests_or_shutdown(
    tiny_src: Path, tmp_path: Path
) -> None:
    """The collector accepts connections and never answers. An export may wait 8 s for it:
    were exports on the request path, the first request would outlast the client's 5 s
    timeout; a flush waiting for every batch would outlast the 15 s the stop allows."""
    install_version(tiny_src / "emb", 1, tmp_path / "models" / "emb", 1)
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(128)
    proc = OriginProcess(
        tmp_path / "models",
        tmp_path / "origin.log",
        OUTPOST_TRACING_ENABLED="true",
        OUTPOST_TRACING_ENDPOINT=f"http://127.0.0.1:{hole.getsockname()[1]}/v1/traces",
        OUTPOST_TRACING_SAMPLE_RATIO="1",
        OUTPOST_TRACING_EXPORT_TIMEOUT="8",
        OTEL_BSP_SCHEDULE_DELAY="50",
        OTEL_BSP_MAX_EXPORT_BATCH_SIZE="8",  # many batches wait in the queue at shutdown
    ).start()
    try:
        for i in range(60):
            r = httpx.post(
                proc.url + "/v1/embeddings", json={"model": "emb", "input": f"x {i}"}, timeout=5
            )
            assert r.status_code == 200
    finally:
        proc.stop()
        hole.close()
    assert proc.proc is not None
    # uvicorn re-raises SIGTERM after a graceful shutdown (-15); -9 means it had to be killed.
    assert proc.proc.returncode == -15, "the origin's shutdown waited on the collector"
    assert "Application shutdown complete" in proc.logs()


def test_untraced_origin_still_puts_trace_ids_in_problems_and_access_log(
    origin: OriginProcess,
) -> None:
    """The shared origin runs with tracing off (the default)."""
    sent, r = post_traced(origin.url + "/v1/embeddings", json={"model": "nope", "input": "x"})
    assert r.json()["trace_id"] == sent.trace_id
    rid = r.headers["x-request-id"]
    # Without a (valid) traceparent the origin makes a trace id up.
    bad = httpx.post(
        origin.url + "/v1/embeddings",
        json={"model": "nope", "input": "x"},
        headers={"traceparent": "00-" + "0" * 32 + "-" + "1" * 16 + "-01"},
        timeout=30,
    )
    made_up = bad.json()["trace_id"]
    assert len(made_up) == 32 and made_up != "0" * 32
    assert made_up != r.json()["trace_id"]
    lines = [line for line in origin.logs().splitlines() if f"request_id={rid}" in line]
    assert any(f"trace_id={sent.trace_id}" in line for line in lines), lines


def test_tracing_off_makes_no_span_objects() -> None:
    assert not tracing.enabled()
    headers = [(b"traceparent", new_trace().traceparent.encode())]
    assert tracing.request_span(headers, "GET", "/") is None
    with tracing.child_span("x") as span:
        assert span is None
    assert tracing.batch_tracer("m", 1) is None


def test_tracing_start_logs_the_endpoint_without_credentials(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = tracing.TracingSettings(
        enabled=True, endpoint="https://otel:s3cr3t-pass@collector.example:4318/v1/traces"
    )
    with caplog.at_level(logging.INFO, logger="origin.tracing"):
        assert tracing.start(settings)
        try:
            assert tracing.enabled()
            assert not tracing.start(settings)  # one tracer per process; the first owns it
        finally:
            tracing.stop()
    assert not tracing.enabled()
    assert "https://collector.example:4318/v1/traces" in caplog.text
    assert "s3cr3t-pass" not in caplog.text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "4bf92f3577b34da6a3ce929d0e0e4736",
        ),
        ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", None),  # uppercase
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", None),  # zero trace id
        ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None),  # forbidden version
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", None),  # v00 + tail
        (
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "4bf92f3577b34da6a3ce929d0e0e4736",
        ),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", None),
        ("", None),
    ],
)
def test_trace_id_of_incoming_traceparent(value: str, expected: str | None) -> None:
    assert tracing.trace_id_of(value) == expected
