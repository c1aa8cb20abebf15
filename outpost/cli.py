"""The `outpost` command line: run the stack, test it, manage models, Vault and tokens."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from outpost.errors import OutpostError
from outpost.modelkit.cli import app as models_app

app = typer.Typer(
    name="outpost",
    help="Outpost: edge + origin backend for mobile apps with ML inference.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
vault_app = typer.Typer(help="Local Vault (OpenBao): bootstrap and status.", no_args_is_help=True)
config_app = typer.Typer(help="Effective configuration of each component.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(vault_app, name="vault")
app.add_typer(config_app, name="config")
console = Console(stderr=True)
out = Console()
_state = {"debug": False}
ROOT = Path(__file__).resolve().parent.parent
ModelsDir = Annotated[
    Path, typer.Option("--models-dir", envvar="OUTPOST_MODELS_DIR", help="Model repository.")
]


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
) -> None:
    _state["debug"] = debug
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


@app.command()
def up(
    vault_port: Annotated[int | None, typer.Option(help="OpenBao port (default 8200).")] = None,
    origin_ports: Annotated[
        str | None, typer.Option(help="Comma-separated origin ports (default 8101,8102).")
    ] = None,
    edge_port: Annotated[int | None, typer.Option(help="Edge port (default 8787).")] = None,
    models_dir: Annotated[Path | None, typer.Option(help="Model repository.")] = None,
    skip_model_build: Annotated[bool, typer.Option(help="Don't build demo models.")] = False,
    monitor: Annotated[
        bool,
        typer.Option(
            "--monitor",
            help="Also run Prometheus (alert rules loaded) and a trace receiver; origins trace "
            "every request.",
        ),
    ] = False,
) -> None:
    """Run Vault, two origins and the edge with the demo models; Ctrl-C stops everything.

    Defaults come from OUTPOST_STACK_* env vars; flags override them.
    """
    from outpost.stack import StackSettings, run_stack

    overrides: dict[str, object] = {
        k: v
        for k, v in {
            "vault_port": vault_port,
            "edge_port": edge_port,
            "models_dir": models_dir,
            "origin_ports": [int(p) for p in origin_ports.split(",")] if origin_ports else None,
        }.items()
        if v is not None
    }
    if skip_model_build:
        overrides["build_models"] = False
    if monitor:
        overrides["monitor"] = True
    raise typer.Exit(run_stack(StackSettings(**overrides), console))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def test(ctx: typer.Context) -> None:
    """Run every check: ruff, the whole pytest suite, and the strict docs build.

    Extra arguments go to pytest (e.g. `outpost test -k vault -x`).
    """
    from outpost.testing import run_all_checks

    raise typer.Exit(run_all_checks(list(ctx.args), console))


@app.command()
def token(
    scope: Annotated[str, typer.Option(help="Space-separated scopes.")] = "inference models:read",
    state_file: Annotated[
        Path | None,
        typer.Option(help="The running stack's state file (default: .outpost/stack.json)."),
    ] = None,
) -> None:
    """Print a short-lived access token from the running stack's real issuer (for local testing).

    Uses the demo service's client credentials that `outpost up` bootstrapped into Vault.
    """
    from outpost.localtoken import fetch_local_token
    from outpost.stack import StackSettings

    token = fetch_local_token(state_file or StackSettings().state_file, scope)
    out.print(token, highlight=False, soft_wrap=True)


@app.command()
def trace(
    trace_id: Annotated[str, typer.Argument(help="32 hex digits: from a log line or problem.")],
    url: Annotated[
        str | None,
        typer.Option(help="The trace receiver (default: the running stack's, from stack.json)."),
    ] = None,
) -> None:
    """Print one trace as a tree of spans, from the trace receiver of `outpost up --monitor`."""
    from outpost.monitoring.traceview import fetch_trace_tree

    out.print(fetch_trace_tree(trace_id, url), highlight=False, markup=False, soft_wrap=True)


@models_app.command("list")
def models_list(
    models_dir: ModelsDir = ROOT / "models",
    url: Annotated[
        str | None, typer.Option(help="Ask a running origin instead of reading the folder.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List models: versions on disk and whether each validates (or what an origin serves)."""
    from outpost.modelcheck import list_models

    rows = list_models(models_dir, url)
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table("model", "task", "versions", "served", "status")
    for row in rows:
        table.add_row(
            row["name"],
            row.get("task") or "?",
            ", ".join(str(v) for v in row["versions"]) or "-",
            str(row.get("served") or "-"),
            row["status"],
        )
    out.print(table)


@models_app.command("validate")
def models_validate(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Model folders (default: all).")
    ] = None,
    models_dir: ModelsDir = ROOT / "models",
) -> None:
    """Check model folders the way the origin would load them; print each problem with its file."""
    from outpost.modelcheck import validate_folders

    folders = paths or sorted(p for p in models_dir.iterdir() if p.is_dir())
    problems = validate_folders(folders, console)
    if problems:
        raise OutpostError(
            f"{problems} problem(s) found",
            hint="fix the fields named above; see docs/models.md for the model.yaml reference",
        )
    console.print(f"[green]{len(folders)} model folder(s) valid[/]")


@vault_app.command("bootstrap")
def vault_bootstrap(
    addr: Annotated[str, typer.Option(help="Vault address.")] = "http://127.0.0.1:8200",
    state_dir: Annotated[Path, typer.Option(help="Local Vault state dir.")] = ROOT
    / ".outpost"
    / "vault",
) -> None:
    """Idempotently create mounts, policies, roles, transit key and seed secrets (local server)."""
    from vault.bootstrap import bootstrap_local

    try:
        result = bootstrap_local(state_dir, addr)
    except Exception as exc:  # hvac/requests errors: one line, no secret in it
        raise OutpostError(
            f"bootstrap failed against {addr}: {type(exc).__name__}",
            hint="is the local Vault running? `./dev up` starts it",
        ) from exc
    console.print(
        "[green]Vault bootstrapped[/]"
        + (f" (created: {', '.join(result.created)})" if result.created else " (nothing to do)")
    )


@vault_app.command("status")
def vault_status(
    addr: Annotated[str, typer.Option(help="Vault address.")] = "http://127.0.0.1:8200",
) -> None:
    """Show whether Vault answers, is initialised and unsealed."""
    import httpx

    try:
        resp = httpx.get(f"{addr}/v1/sys/health", timeout=2.0)
    except httpx.HTTPError as exc:
        raise OutpostError(
            f"Vault at {addr} is unreachable ({type(exc).__name__})",
            hint="start the stack with `./dev up`",
        ) from None
    body = resp.json()
    table = Table("addr", "initialized", "sealed", "version")
    table.add_row(addr, str(body.get("initialized")), str(body.get("sealed")), body.get("version"))
    out.print(table)


@config_app.command("show")
def config_show(
    component: Annotated[
        str, typer.Argument(help="origin | vault | identity | tracing | edge | stack | all")
    ] = "all",
) -> None:
    """Print the effective configuration (env + defaults), secrets redacted."""
    from outpost.effective_config import effective_config

    out.print_json(json.dumps(effective_config(component), default=str))


@app.command()
def bench(
    which: Annotated[str, typer.Argument(help="origin | peers")] = "origin",
) -> None:
    """Run a benchmark from bench/ (never part of the tests); results go to bench/results/."""
    import subprocess

    scripts = {"origin": ROOT / "bench" / "origin_load.py", "peers": ROOT / "bench" / "peers.py"}
    script = scripts.get(which)
    if script is None or not script.exists():
        raise OutpostError(f"no benchmark named {which!r}", hint=f"choose from {sorted(scripts)}")
    raise typer.Exit(subprocess.call([sys.executable, str(script)], cwd=ROOT))


def main() -> None:
    """Entry point that turns OutpostError into one clear line plus a hint."""
    try:
        app()
    except OutpostError as exc:
        if _state["debug"]:
            raise
        console.print(f"[bold red]error:[/] {exc.message}", soft_wrap=True, highlight=False)
        if exc.hint:
            console.print(f"[yellow]hint:[/] {exc.hint}", soft_wrap=True, highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
