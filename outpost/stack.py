"""`outpost up`: the whole local stack (OpenBao, two origins, the edge) in one terminal.

Order: demo models (built offline, cached) -> OpenBao (persistent, auto-unsealed) -> bootstrap
(idempotent) -> origin replicas -> edge. Each step waits for health before the next; the state
file `.outpost/stack.json` tells scripts and tests where everything is.
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

from pydantic import Field, model_validator
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
    origin_grpc_ports: list[int] | None = Field(
        None,
        description="Each origin's OIP gRPC port, in the same order (default: its HTTP port + 10).",
    )
    edge_port: int = Field(8787, description="The edge's port (what mobile apps call).")
    build_models: bool = Field(True, description="Build missing demo models before starting.")

    @model_validator(mode="after")
    def _one_grpc_port_per_origin(self) -> StackSettings:
        if self.origin_grpc_ports is not None and len(self.origin_grpc_ports) != len(
            self.origin_ports
        ):
            raise ValueError(
                f"origin_grpc_ports needs one port per origin: {len(self.origin_grpc_ports)} "
                f"given for {len(self.origin_ports)} origins"
            )
        return self

    @property
    def grpc_ports(self) -> list[int]:
        return self.origin_grpc_ports or [p + 10 for p in self.origin_ports]

    @property
    def edge_url(self) -> str:
        return f"http://{self.host}:{self.edge_port}"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "stack.json"


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
    return {
        "edge": {"url": settings.edge_url},
        "origins": [
            {"url": f"http://{settings.host}:{p}", "grpc": f"{settings.host}:{g}"}
            for p, g in zip(settings.origin_ports, settings.grpc_ports, strict=True)
        ],
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
        origins = []
        for port, grpc_port in zip(settings.origin_ports, settings.grpc_ports, strict=True):
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
                        "--grpc-port",
                        str(grpc_port),
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
        edge = sup.start(
            "edge",
            [_python(), "-m", "edge", "--host", settings.host, "--port", str(settings.edge_port)],
            env=edge_env,
            health_url=f"{settings.edge_url}/healthz",
            cwd=str(ROOT),
        )
        with console.status("waiting for the edge"):
            sup.wait_healthy(edge, timeout=60)

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


def _print_welcome(settings: StackSettings, console: Console) -> None:
    edge = settings.edge_url
    console.rule("[bold green]Outpost is up")
    console.print(f"edge    {edge}   (what mobile apps call)")
    pairs = zip(settings.origin_ports, settings.grpc_ports, strict=True)
    for i, (port, grpc_port) in enumerate(pairs, 1):
        console.print(
            f"origin-{i} http://{settings.host}:{port}   gRPC {settings.host}:{grpc_port}"
        )
    console.print(f"vault   http://{settings.host}:{settings.vault_port}")
    console.print(f"state   {settings.state_file}")
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
