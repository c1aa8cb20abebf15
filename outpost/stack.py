"""`outpost up`: the whole local stack (OpenBao, two origins, the edge) in one terminal.

Order: demo models (built offline, cached) -> OpenBao (persistent, auto-unsealed) -> bootstrap
(idempotent) -> [trace receiver] -> origin replicas -> edge -> [Prometheus]. Each step waits for
health before the next; the state file `.outpost/stack.json` tells scripts and tests where
everything is. `--monitor` adds the bracketed parts (`outpost/monitoring/local.py`).
"""

from __future__ import annotations

import contextlib
import json
import os
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

from outpost import lan
from outpost.effective_config import redact
from outpost.errors import OutpostError
from outpost.supervisor import Supervisor

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"


class StackSettings(BaseSettings):
    """Ports and folders of the local stack (env prefix `OUTPOST_STACK_`, or `outpost up` flags)."""

    model_config = SettingsConfigDict(env_prefix="OUTPOST_STACK_", extra="ignore")

    state_dir: Path = Field(ROOT / ".outpost", description="Local state: Vault data, caches.")
    models_dir: Path = Field(ROOT / "models", description="Model repository served by origins.")
    cache_dir: Path | None = Field(
        None, description="Where built demo models are cached (default: <state_dir>/cache)."
    )
    host: str = Field(
        LOOPBACK,
        description="Interface the edge listens on: 127.0.0.1 (this machine only), 0.0.0.0 "
        "(every interface: phones on your network) or one address of this machine.",
    )
    lan: bool = Field(
        False,
        description="Listen on every interface and advertise this machine's LAN address "
        "(same as host 0.0.0.0).",
    )
    public_url: str | None = Field(
        None,
        description="The edge URL phones use and the token issuer's URL (default: this "
        "machine's LAN address when listening on every interface, else the edge's own URL).",
    )
    origin_host: str = Field(
        LOOPBACK,
        description="Interface the origins listen on. Keep loopback: only the edge should reach "
        "them, since it is the edge that checks tokens and rate limits.",
    )
    vault_host: str = Field(
        LOOPBACK,
        description="Interface OpenBao listens on. Keep loopback: it holds every secret, and the "
        "local server's unseal key lies on this disk.",
    )
    vault_port: int = Field(8200, description="OpenBao's port.")
    origin_ports: list[int] = Field([8101, 8102], description="One origin replica per port.")
    origin_grpc_ports: list[int] | None = Field(
        None,
        description="Each origin's OIP gRPC port, in the same order (default: its HTTP port + 10).",
    )
    origin_admin_ports: list[int] | None = Field(
        None,
        description="Each origin's internal listener (/metrics, /healthz, /v1/models without a "
        "caller proof; loopback), in the same order (default: its HTTP port + 20).",
    )
    edge_port: int = Field(8787, description="The edge's port (what mobile apps call).")
    edge_admin_port: int = Field(
        8788, description="The edge's internal listener (/metrics, detailed /healthz; loopback)."
    )
    build_models: bool = Field(True, description="Build missing demo models before starting.")
    monitor: bool = Field(
        False, description="Also run Prometheus (with the alert rules) and a trace receiver."
    )
    prometheus_port: int = Field(9190, description="Prometheus's port with --monitor.")
    otlp_port: int = Field(4318, description="The trace receiver's OTLP/HTTP port (--monitor).")
    trace_sample_ratio: float = Field(
        1.0, ge=0, le=1, description="Share of new traces the origins record with --monitor."
    )

    @model_validator(mode="after")
    def _one_grpc_port_per_origin(self) -> StackSettings:
        for name in ("origin_grpc_ports", "origin_admin_ports"):
            ports = getattr(self, name)
            if ports is not None and len(ports) != len(self.origin_ports):
                raise ValueError(
                    f"{name} needs one port per origin: {len(ports)} "
                    f"given for {len(self.origin_ports)} origins"
                )
        return self

    @property
    def grpc_ports(self) -> list[int]:
        return self.origin_grpc_ports or [p + 10 for p in self.origin_ports]

    @property
    def admin_ports(self) -> list[int]:
        return self.origin_admin_ports or [p + 20 for p in self.origin_ports]

    @property
    def edge_host(self) -> str:
        """The address the edge binds."""
        return "0.0.0.0" if self.lan else self.host

    @property
    def edge_url(self) -> str:
        """The edge as this machine reaches it (loopback when it listens on every interface)."""
        return url_for(self.edge_host, self.edge_port)

    def origin_urls(self) -> list[str]:
        return [url_for(self.origin_host, p) for p in self.origin_ports]

    def resolve_public_url(self) -> str:
        """The URL a phone (and the token issuer) uses; detects the LAN address when needed."""
        if self.public_url:
            return self.public_url.rstrip("/")
        if not lan.is_wildcard(self.edge_host):
            return self.edge_url
        address = lan.lan_address()
        if address is None:
            raise OutpostError(
                "no LAN address found for this machine (is it on a network?)",
                hint="pass the address phones should use: outpost up --host <this machine's IP>",
            )
        return url_for(address, self.edge_port)

    @property
    def state_file(self) -> Path:
        return self.state_dir / "stack.json"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"  # the operator's, on loopback

    @property
    def traces_url(self) -> str:
        return f"http://127.0.0.1:{self.otlp_port}"


def url_for(host: str, port: int) -> str:
    """`http://host:port`, with loopback for a wildcard host and brackets around IPv6."""
    if lan.is_wildcard(host):
        host = "::1" if host == "::" else LOOPBACK
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


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


def _inherited(*prefixes: str) -> dict[str, str]:
    """The settings a child inherits from this process's environment (the supervisor passes it
    on)."""
    return {k: v for k, v in os.environ.items() if k.startswith(prefixes)}


def origin_env(settings: StackSettings, vault_addr: str, public_url: str) -> dict[str, str]:
    """The settings every origin replica gets (paths to secrets, never secret values)."""
    vault_state = settings.state_dir / "vault"
    return {
        "HF_HUB_OFFLINE": "1",
        # Only the edge (it signs with the caller key from Vault) gets answers; probes, public
        # keys and the internal listener excepted.
        "OUTPOST_ORIGIN_CALLER_PROOF_REQUIRED": "true",
        "OUTPOST_VAULT_ENABLED": "true",
        "OUTPOST_VAULT_ADDR": vault_addr,
        "OUTPOST_VAULT_APPROLE_FILE": str(vault_state / "origin-approle.json"),
        # The issuer's URLs (discovery, JWKS) are the edge's public URL: a phone follows them.
        "OUTPOST_IDENTITY_ISSUER": public_url,
        # DPoP proofs name the URL the app called: this machine's address is valid too.
        "OUTPOST_IDENTITY_TOKEN_ENDPOINT_URLS": json.dumps(
            sorted({f"{public_url}/oauth/token", f"{settings.edge_url}/oauth/token"})
        ),
        # The development stand-in for App Check (docs/device-trust.md).
        "OUTPOST_IDENTITY_LOCAL_ATTESTATION": "true",
    }


def edge_env(settings: StackSettings, public_url: str, caller_key: str) -> dict[str, str]:
    """The edge's settings: the local origins, the issuer whose keys it trusts, and the key it
    proves itself to the origins with (a secret: handed over in the environment only)."""
    origin_urls = settings.origin_urls()
    return {
        "OUTPOST_EDGE_CALLER_KEY": caller_key,
        "OUTPOST_EDGE_ORIGINS": json.dumps([{"url": u} for u in origin_urls]),
        "OUTPOST_EDGE_ISSUERS": json.dumps(
            [{"issuer": public_url, "jwks_url": f"{origin_urls[0]}/.well-known/jwks.json"}]
        ),
        # The local attestation issuer, trusted for the demo app; off on every route class
        # until a mode is set (e.g. {"inference": "enforce"}).
        "OUTPOST_EDGE_ATTESTATION": json.dumps(
            {
                "modes": {},
                "issuers": [
                    {
                        "issuer": f"{public_url}/attestation/local",
                        "jwks_url": f"{origin_urls[0]}/attestation/local/jwks.json",
                        "audiences": ["projects/outpost-local"],
                        "app_ids": ["demo-app"],
                    }
                ],
            }
        ),
    }


def stack_state(
    settings: StackSettings, vault_addr: str, public_url: str, config: dict[str, dict[str, str]]
) -> dict[str, Any]:
    """The machine-readable description written to `.outpost/stack.json` (no secrets in it).

    `config` holds the environment each component was started with, so `outpost config show`
    can show what is running rather than what the current shell would start.
    """
    monitoring = (
        {"monitoring": {"prometheus": settings.prometheus_url, "traces": settings.traces_url}}
        if settings.monitor
        else {}
    )
    return {
        **monitoring,
        "pid": os.getpid(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "edge": {
            "url": settings.edge_url,
            "public_url": public_url,
            "host": settings.edge_host,
            "admin_url": f"http://127.0.0.1:{settings.edge_admin_port}",
        },
        "origins": [
            {"url": u, "grpc": f"{settings.origin_host}:{g}", "admin_url": url_for(LOOPBACK, a)}
            for u, g, a in zip(
                settings.origin_urls(), settings.grpc_ports, settings.admin_ports, strict=True
            )
        ],
        "vault": {"addr": vault_addr, "state_dir": str(settings.state_dir / "vault")},
        "issuer": public_url,
        "token_command": [str(ROOT / "dev"), "token", "--state-file", str(settings.state_file)],
        "demo_credentials_file": str(settings.state_dir / "vault" / "demo-credentials.json"),
        "models_dir": str(settings.models_dir),
        "config": config,
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
    public_url = settings.resolve_public_url()  # before anything starts: fails fast
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    if settings.build_models:
        _build_models(settings, console)

    vault_state = settings.state_dir / "vault"
    with console.status(f"starting OpenBao on port {settings.vault_port}"):
        try:
            vault = start_local_vault(vault_state, settings.vault_port, host=settings.vault_host)
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
            boot = bootstrap_local(vault_state, vault.addr)
        common_env = origin_env(settings, vault.addr, public_url)
        if settings.monitor:
            common_env.update(_start_trace_receiver(settings, sup, console))
        origins = []
        for port, grpc_port, admin_port, url in zip(
            settings.origin_ports,
            settings.grpc_ports,
            settings.admin_ports,
            settings.origin_urls(),
            strict=True,
        ):
            name = f"origin-{len(origins) + 1}"
            origins.append(
                sup.start(
                    name,
                    [
                        _python(),
                        "-m",
                        "origin",
                        "--host",
                        settings.origin_host,
                        "--port",
                        str(port),
                        "--grpc-port",
                        str(grpc_port),
                        "--admin-port",
                        str(admin_port),
                        "--models-dir",
                        str(settings.models_dir),
                    ],
                    env=common_env,
                    health_url=f"{url}/v2/health/ready",
                    cwd=str(ROOT),
                )
            )
        for child in origins:
            with console.status(f"waiting for {child.name} (loading models)"):
                sup.wait_healthy(child, timeout=180)

        env_of_edge = edge_env(settings, public_url, boot.caller_key)
        if settings.monitor:  # the edge's own spans
            env_of_edge["OUTPOST_EDGE_TRACE_SAMPLE_RATIO"] = str(settings.trace_sample_ratio)
            env_of_edge["OUTPOST_EDGE_TRACE_EXPORT_ENDPOINT"] = f"{settings.traces_url}/v1/traces"
        edge = sup.start(
            "edge",
            [
                _python(),
                *("-m", "edge", "--host", settings.edge_host, "--port", str(settings.edge_port)),
                *("--admin-port", str(settings.edge_admin_port)),
            ],
            env=env_of_edge,
            health_url=f"{settings.edge_url}/healthz",
            cwd=str(ROOT),
        )
        with console.status("waiting for the edge"):
            sup.wait_healthy(edge, timeout=60)
        if settings.monitor:
            _start_prometheus(settings, sup, console)

        config = {
            "edge": redact({**_inherited("OUTPOST_EDGE_"), **env_of_edge}),
            "origin": redact(
                {
                    **_inherited("OUTPOST_ORIGIN_", "OUTPOST_VAULT_", "OUTPOST_IDENTITY_"),
                    **common_env,
                }
            ),
        }
        state = stack_state(settings, vault.addr, public_url, config)
        settings.state_file.write_text(json.dumps(state, indent=2))
        _print_welcome(settings, public_url, console)
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

    argv = receiver_argv("127.0.0.1", settings.otlp_port, settings.state_dir / "traces.jsonl")
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
        "127.0.0.1",
        settings.prometheus_port,
        origins=[f"{LOOPBACK}:{p}" for p in settings.admin_ports],  # their internal listeners
        edges=[f"127.0.0.1:{settings.edge_admin_port}"],  # the edge's internal listener
    )
    prometheus = sup.start(
        "prometheus", argv, health_url=f"{settings.prometheus_url}/-/ready", cwd=str(ROOT)
    )
    with console.status("starting Prometheus"):
        sup.wait_healthy(prometheus, timeout=60)


def _print_welcome(settings: StackSettings, public_url: str, console: Console) -> None:
    edge = settings.edge_url
    console.rule("[bold green]Outpost is up")
    console.print(f"edge     {edge}   (what mobile apps call)", highlight=False)
    pairs = zip(settings.origin_urls(), settings.grpc_ports, strict=True)
    for i, (url, grpc_port) in enumerate(pairs, 1):
        console.print(
            f"origin-{i} {url}   gRPC {settings.origin_host}:{grpc_port}", highlight=False
        )
    console.print(f"vault    {url_for(settings.vault_host, settings.vault_port)}", highlight=False)
    console.print(f"state    {settings.state_file}", highlight=False)
    port = settings.edge_port
    if public_url != edge:
        console.print(
            f"\n[bold]From a phone on this network:[/] {public_url}   (scan it)", highlight=False
        )
        console.print(lan.qr_text(public_url))
        creds = settings.state_dir / "vault" / "demo-credentials.json"
        console.print(
            f"The demo app's key for device registration is `api_key` in {creds}.",
            highlight=False,
        )
        inside = all(lan.is_loopback(h) for h in (settings.origin_host, settings.vault_host))
        console.print(
            "Anyone on this network can reach the edge; it answers inference only with a token. "
            + (
                "The origins and Vault stay on loopback."
                if inside
                else "[bold yellow]The origins or Vault listen beyond loopback too.[/]"
            ),
            style="dim",
        )
    else:
        console.print(
            f"\nAndroid emulator: http://10.0.2.2:{port}   "
            "A phone on your network: `outpost up --lan`.",
            highlight=False,
        )
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
