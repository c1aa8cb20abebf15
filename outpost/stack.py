"""`outpost up`: the whole local stack (OpenBao, two origins, the edge) in one terminal.

Order: demo models (built offline, cached) -> OpenBao (persistent, auto-unsealed) -> bootstrap
(idempotent) -> [trace receiver] -> origin replicas -> edge -> [Prometheus]. Each step waits for
health before the next; the state file `.outpost/stack.json` tells scripts and tests where
everything is. `--monitor` adds the bracketed parts (`outpost/monitoring/local.py`).
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.console import Console

from outpost.errors import OutpostError
from outpost.supervisor import Supervisor

ROOT = Path(__file__).resolve().parent.parent


class StackSettings(BaseSettings):
    """Ports and folders of the local stack (env prefix `OUTPOST_STACK_`, or `outpost up` flags)."""

    model_config = SettingsConfigDict(env_prefix="OUTPOST_STACK_", extra="ignore")

    state_dir: Path = Field(ROOT / ".outpost", description="Local state: Vault data, caches.")
    models_dir: Path = Field(ROOT / "models", description="Model repository served by origins.")
    cache_dir: Path | None = Field(
        None, description="Where built demo models are cached (default: <state_dir>/cache)."
    )
    host: str = Field("127.0.0.1", description="Interface every component listens on.")
    vault_port: int = Field(8200, description="OpenBao's port.")
    origin_ports: list[int] = Field([8101, 8102], description="One origin replica per port.")
    edge_port: int = Field(8787, description="The edge's port (what mobile apps call).")
    build_models: bool = Field(True, description="Build missing demo models before starting.")
    monitor: bool = Field(
        False, description="Also run Prometheus (with the alert rules) and a trace receiver."
    )
    prometheus_port: int = Field(9190, description="Prometheus's port with --monitor.")
    otlp_port: int = Field(4318, description="The trace receiver's OTLP/HTTP port (--monitor).")
    trace_sample_ratio: float = Field(
        1.0, ge=0, le=1, description="Share of new traces the origins record with --monitor."
    )

    @property
    def edge_url(self) -> str:
        return f"http://{self.host}:{self.edge_port}"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "stack.json"

    @property
    def prometheus_url(self) -> str:
        return f"http://{self.host}:{self.prometheus_port}"

    @property
    def traces_url(self) -> str:
        return f"http://{self.host}:{self.otlp_port}"


@dataclass
class _VaultLogTail:
    """Copies new lines of OpenBao's log file into the supervisor's prefixed output."""

    path: Path
    console: Console
    stop: threading.Event

    def run(self) -> None:
        with contextlib.suppress(OSError), open(self.path, errors="replace") as fh:
            fh.seek(0, 2)
            while not self.stop.is_set():
                line = fh.readline()
                if line:
                    self.console.print(
                        f"[bright_black]vault    |[/] {line.rstrip()}", highlight=False
                    )
                else:
                    time.sleep(0.2)


def _python() -> str:
    return sys.executable


def stack_state(settings: StackSettings, vault_addr: str) -> dict[str, Any]:
    """The machine-readable description written to `.outpost/stack.json` (no secrets in it)."""
    monitoring = (
        {"monitoring": {"prometheus": settings.prometheus_url, "traces": settings.traces_url}}
        if settings.monitor
        else {}
    )
    return {
        **monitoring,
        "edge": {"url": settings.edge_url},
        "origins": [{"url": f"http://{settings.host}:{p}"} for p in settings.origin_ports],
        "vault": {"addr": vault_addr},
        "issuer": settings.edge_url,
        "token_command": [str(ROOT / "dev"), "token", "--state-file", str(settings.state_file)],
        "demo_credentials_file": str(settings.state_dir / "vault" / "demo-credentials.json"),
        "models_dir": str(settings.models_dir),
    }


def _build_models(settings: StackSettings, console: Console) -> None:
    from outpost.modelkit.demo import build_demo_models

    with console.status("building demo models (cached after the first run)") as status:
        build_demo_models(
            settings.models_dir,
            cache_dir=(settings.cache_dir or settings.state_dir / "cache") / "models",
            progress=lambda msg: status.update(f"demo models: {msg}"),
        )


def stop_on_signals() -> None:
    """Make SIGTERM and SIGHUP stop the stack like Ctrl-C does, and re-arm SIGINT even when our
    parent started us with it ignored (background jobs of a non-interactive shell are). The
    children run in their own sessions, so without this a `kill` would orphan them."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.default_int_handler)


def run_stack(settings: StackSettings, console: Console) -> int:
    """Start everything, print how to use it, and supervise until Ctrl-C, SIGTERM or a child
    dies; every child is stopped on the way out."""
    from vault.bootstrap import bootstrap_local
    from vault.server import VaultStartError, start_local_vault

    stop_on_signals()
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    if settings.build_models:
        _build_models(settings, console)

    vault_state = settings.state_dir / "vault"
    with console.status(f"starting OpenBao on port {settings.vault_port}"):
        try:
            vault = start_local_vault(vault_state, settings.vault_port)
        except VaultStartError as exc:
            raise OutpostError(
                f"OpenBao did not start: {exc}",
                hint=f"is port {settings.vault_port} free? set OUTPOST_STACK_VAULT_PORT",
            ) from None
    stop_tail = threading.Event()
    tail = _VaultLogTail(vault_state / "server.log", console, stop_tail)
    threading.Thread(target=tail.run, daemon=True).start()

    sup = Supervisor(console)
    try:
        with console.status("bootstrapping Vault (idempotent)"):
            bootstrap_local(vault_state, vault.addr)
        common_env = {
            "HF_HUB_OFFLINE": "1",
            "OUTPOST_VAULT_ENABLED": "true",
            "OUTPOST_VAULT_ADDR": vault.addr,
            "OUTPOST_VAULT_APPROLE_FILE": str(vault_state / "origin-approle.json"),
            "OUTPOST_IDENTITY_ISSUER": settings.edge_url,
        }
        if settings.monitor:
            common_env.update(_start_trace_receiver(settings, sup, console))
        origins = []
        for port in settings.origin_ports:
            name = f"origin-{len(origins) + 1}"
            origins.append(
                sup.start(
                    name,
                    [
                        _python(),
                        "-m",
                        "origin",
                        "--host",
                        settings.host,
                        "--port",
                        str(port),
                        "--models-dir",
                        str(settings.models_dir),
                    ],
                    env=common_env,
                    health_url=f"http://{settings.host}:{port}/v2/health/ready",
                    cwd=str(ROOT),
                )
            )
        for child in origins:
            with console.status(f"waiting for {child.name} (loading models)"):
                sup.wait_healthy(child, timeout=180)

        origin_urls = [f"http://{settings.host}:{p}" for p in settings.origin_ports]
        edge_env = {
            "OUTPOST_EDGE_ORIGINS": json.dumps([{"url": u} for u in origin_urls]),
            "OUTPOST_EDGE_ISSUERS": json.dumps(
                [
                    {
                        "issuer": settings.edge_url,
                        "jwks_url": f"{origin_urls[0]}/.well-known/jwks.json",
                    }
                ]
            ),
        }
        if settings.monitor:  # the edge's own spans, once it reads these settings
            edge_env["OUTPOST_EDGE_TRACE_SAMPLE_RATIO"] = str(settings.trace_sample_ratio)
            edge_env["OUTPOST_EDGE_TRACE_EXPORT_ENDPOINT"] = f"{settings.traces_url}/v1/traces"
        edge = sup.start(
            "edge",
            [_python(), "-m", "edge", "--host", settings.host, "--port", str(settings.edge_port)],
            env=edge_env,
            health_url=f"{settings.edge_url}/healthz",
            cwd=str(ROOT),
        )
        with console.status("waiting for the edge"):
            sup.wait_healthy(edge, timeout=60)
        if settings.monitor:
            _start_prometheus(settings, sup, console)

        settings.state_file.write_text(json.dumps(stack_state(settings, vault.addr), indent=2))
        _print_welcome(settings, console)
        died = sup.watch()
        if died:
            console.print(f"[bold red]{died} exited; stopping the stack[/]")
            return 1
        console.print("\nstopping…")
        return 0
    finally:
        sup.stop_all()
        stop_tail.set()
        vault.stop()
        with contextlib.suppress(OSError):
            settings.state_file.unlink()


def _start_trace_receiver(
    settings: StackSettings, sup: Supervisor, console: Console
) -> dict[str, str]:
    """Start the OTLP receiver; returns the env that points the origins' tracing at it."""
    from outpost.monitoring.local import receiver_argv

    argv = receiver_argv(settings.host, settings.otlp_port, settings.state_dir / "traces.jsonl")
    receiver = sup.start("traces", argv, health_url=f"{settings.traces_url}/healthz", cwd=str(ROOT))
    with console.status("starting the trace receiver"):
        sup.wait_healthy(receiver, timeout=30)
    return {
        "OUTPOST_TRACING_ENABLED": "true",
        "OUTPOST_TRACING_ENDPOINT": f"{settings.traces_url}/v1/traces",
        "OUTPOST_TRACING_SAMPLE_RATIO": str(settings.trace_sample_ratio),
        "OTEL_BSP_SCHEDULE_DELAY": "1000",  # spans show up within a second
    }


def _start_prometheus(settings: StackSettings, sup: Supervisor, console: Console) -> None:
    from outpost.monitoring.local import write_prometheus_files

    argv = write_prometheus_files(
        settings.state_dir,
        settings.host,
        settings.prometheus_port,
        origins=[f"{settings.host}:{p}" for p in settings.origin_ports],
        edges=[f"{settings.host}:{settings.edge_port}"],
    )
    prometheus = sup.start(
        "prometheus", argv, health_url=f"{settings.prometheus_url}/-/ready", cwd=str(ROOT)
    )
    with console.status("starting Prometheus"):
        sup.wait_healthy(prometheus, timeout=60)


def _print_welcome(settings: StackSettings, console: Console) -> None:
    edge = settings.edge_url
    console.rule("[bold green]Outpost is up")
    console.print(f"edge    {edge}   (what mobile apps call)")
    for i, port in enumerate(settings.origin_ports, 1):
        console.print(f"origin-{i} http://{settings.host}:{port}")
    console.print(f"vault   http://{settings.host}:{settings.vault_port}")
    console.print(f"state   {settings.state_file}")
    if settings.monitor:
        console.print(f"prometheus {settings.prometheus_url}   (alerts: /alerts, rules: /rules)")
        console.print(
            f"traces  {settings.traces_url}   (`./dev trace <trace id>`; every span is also "
            f"in {settings.state_dir / 'traces.jsonl'})"
        )
    console.print("\nTry it (in another terminal):\n", style="bold")
    console.print(
        f"  TOKEN=$(./dev token)\n"
        f'  curl -s {edge}/v1/embeddings -H "Authorization: Bearer $TOKEN" \\\n'
        f"       -H 'Content-Type: application/json' "
        f'-d \'{{"model": "minilm", "input": "hello outpost"}}\' -D - -o /dev/null\n'
        f"  # run it twice: the second answer says X-Cache: HIT\n",
        highlight=False,
        soft_wrap=True,
    )
    console.print("Ctrl-C stops everything.", style="dim")
