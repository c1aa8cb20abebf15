"""`outpost up --monitor`'s parts, run by the real supervisor: quiet when idle, and wired up.

The same children the stack starts (`outpost/stack.py`), minus Vault: a trace receiver, a real
origin on tiny models with tracing on, the edge health-checking it every half second, and a
real Prometheus (Debian's) scraping both every second with the project's rules. Everything
they print lands in one console, as in a terminal.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from outpost.monitoring import dashboard, local
from outpost.supervisor import Supervisor
from tests.conftest import ROOT, free_port
from tests.traces import post_traced

HEALTH_INTERVAL = 0.5


@dataclass
class MonitorStack:
    console: io.StringIO
    origin: str
    edge: str
    prometheus: str
    receiver: str


def _wait_for(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MonitorStack]:
    from outpost.modelkit.tiny import build_tiny_embeddings

    root = tmp_path_factory.mktemp("monitor")
    build_tiny_embeddings(root / "models" / "emb", version=1, seed=0)
    buf = io.StringIO()
    sup = Supervisor(Console(file=buf, width=240, color_system=None))
    ports = {
        name: free_port() for name in ("origin", "edge", "edge_admin", "prometheus", "receiver")
    }
    host = "127.0.0.1"
    receiver = f"http://{host}:{ports['receiver']}"
    origin = f"http://{host}:{ports['origin']}"
    edge = f"http://{host}:{ports['edge']}"
    prometheus = f"http://{host}:{ports['prometheus']}"
    try:
        child = sup.start(
            "traces",
            local.receiver_argv(host, ports["receiver"], root / "traces.jsonl"),
            health_url=receiver + "/healthz",
            cwd=str(ROOT),
        )
        sup.wait_healthy(child, timeout=30)
        child = sup.start(
            "origin-1",
            [
                *(sys.executable, "-m", "origin", "--port", str(ports["origin"])),
                *("--models-dir", str(root / "models")),
            ],
            env={
                "HF_HUB_OFFLINE": "1",
                "OUTPOST_TRACING_ENABLED": "true",
                "OUTPOST_TRACING_ENDPOINT": receiver + "/v1/traces",
                "OUTPOST_TRACING_SAMPLE_RATIO": "1",
                "OTEL_BSP_SCHEDULE_DELAY": "200",
            },
            health_url=origin + "/v2/health/ready",
            cwd=str(ROOT),
        )
        sup.wait_healthy(child, timeout=120)
        child = sup.start(
            "edge",
            [
                *(sys.executable, "-m", "edge", "--port", str(ports["edge"]), "--origin", origin),
                *("--admin-port", str(ports["edge_admin"])),  # /metrics is served there only
            ],
            env={"OUTPOST_EDGE_HEALTH_INTERVAL_SECONDS": str(HEALTH_INTERVAL)},
            health_url=edge + "/healthz",
            cwd=str(ROOT),
        )
        sup.wait_healthy(child, timeout=60)
        argv = local.write_prometheus_files(
            root,
            host,
            ports["prometheus"],
            [f"{host}:{ports['origin']}"],
            [f"{host}:{ports['edge_admin']}"],
        )
        config = root / "monitoring" / "prometheus.yml"
        config.write_text(config.read_text().replace("5s", "1s"))  # scrape every second here
        child = sup.start("prometheus", argv, health_url=prometheus + "/-/ready", cwd=str(ROOT))
        sup.wait_healthy(child, timeout=60)
        yield MonitorStack(buf, origin, edge, prometheus, receiver)
    finally:
        sup.stop_all(grace=10)
    assert "Traceback" not in buf.getvalue(), buf.getvalue()[-4000:]


def _query(stack: MonitorStack, expr: str) -> list[dict]:
    resp = httpx.get(stack.prometheus + "/api/v1/query", params={"query": expr}, timeout=10)
    body = resp.json()
    assert body["status"] == "success", (expr, body)
    return body["data"]["result"]


def test_an_idle_stack_prints_nothing(stack: MonitorStack) -> None:
    """Health checks (edge -> origin every 0.5 s), model polls and scrapes go to debug."""

    def polled_and_scraped() -> bool:
        probes = httpx.get(stack.origin + "/metrics", timeout=10).text
        up = _query(stack, "up == 1")
        return (
            'route="/v2/health/ready"' in probes
            and 'route="/v1/models"' in probes
            and {u["metric"]["job"] for u in up} == {"outpost-origin", "outpost-edge"}
        )

    _wait_for(polled_and_scraped, 60, "health checks, model polls and scrapes")
    time.sleep(1.5)  # the last start-up lines flush
    before = stack.console.getvalue()
    time.sleep(8 * HEALTH_INTERVAL)  # eight health rounds, four scrapes of each target
    new = stack.console.getvalue()[len(before) :]
    assert new == "", f"an idle stack printed:\n{new}"


def test_a_request_is_printed_by_the_origin_and_the_trace_receiver(stack: MonitorStack) -> None:
    before = len(stack.console.getvalue())
    sent, r = post_traced(stack.origin + "/v1/embeddings", json={"model": "emb", "input": "hello"})
    assert r.status_code == 200

    def printed() -> bool:
        text = stack.console.getvalue()[before:]
        return f"trace_id={sent.trace_id}" in text and f"trace {sent.trace_id}" in text

    _wait_for(printed, 20, "the access line and the receiver's span line")
    # `outpost trace <id>` prints the tree from the receiver.
    result = subprocess.run(
        [sys.executable, "-m", "outpost", "trace", sent.trace_id, "--url", stack.receiver],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "POST /v1/embeddings [outpost-origin]" in result.stdout
    assert "engine.run" in result.stdout


def test_prometheus_scrapes_both_tiers_and_loads_the_rules(stack: MonitorStack) -> None:
    targets = httpx.get(stack.prometheus + "/api/v1/targets", timeout=10).json()["data"]
    jobs = {t["labels"]["job"]: t["health"] for t in targets["activeTargets"]}
    assert jobs == {"outpost-origin": "up", "outpost-edge": "up"}, targets
    groups = httpx.get(stack.prometheus + "/api/v1/rules", timeout=10).json()["data"]["groups"]
    names = {r["name"] for g in groups for r in g["rules"]}
    assert {"OutpostEdgeAvailabilityLow", "outpost:origin_model_latency_seconds:p99_5m"} <= names
    assert all(r["health"] == "ok" for g in groups for r in g["rules"]), groups
    # The queue capacity gauge arrives with the model; the saturation rule computes from it.
    for i in range(5):
        httpx.post(stack.origin + "/v1/embeddings", json={"model": "emb", "input": f"x {i}"})
    saturation = _wait_for(
        lambda: _query(stack, "outpost:origin_queue_saturation:ratio"), 30, "the recording rule"
    )
    assert saturation[0]["metric"]["model"] == "emb"


def test_every_dashboard_query_runs_on_real_prometheus(stack: MonitorStack) -> None:
    doc = json.loads(dashboard.DASHBOARD_FILE.read_text())
    for panel in doc["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$__rate_interval", "1m").replace("$model", ".*")
            _query(stack, expr)  # asserts status success


def test_missing_prometheus_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from outpost.errors import OutpostError

    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    with pytest.raises(OutpostError) as err:
        local.prometheus_binary()
    assert "apt-get install prometheus" in (err.value.hint or "")


def test_dashboard_snapshot_renders_from_real_prometheus(
    stack: MonitorStack, tmp_path: Path
) -> None:
    """The docs' dashboard picture: every panel's query through Prometheus's HTTP API."""
    from outpost.monitoring.snapshot import render

    out = render(stack.prometheus, tmp_path / "dashboard.png", minutes=1, rate="15s")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
