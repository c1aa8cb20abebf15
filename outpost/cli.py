"""The `outpost` command line: run the stack, test it, manage models, Vault and tokens."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from outpost.apps_cli import app as apps_app
from outpost.errors import OutpostError
from outpost.modelkit.cli import app as models_app

if TYPE_CHECKING:
    from outpost.running import RunningStack

app = typer.Typer(
    name="outpost",
    help="Outpost: edge + origin backend for mobile apps with ML inference.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
vault_app = typer.Typer(
    help="Local Vault (OpenBao): bootstrap, and check Outpost's setup in it.", no_args_is_help=True
)
config_app = typer.Typer(
    help="Configuration of each component: the running stack's, or env + defaults.",
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")
app.add_typer(vault_app, name="vault")
app.add_typer(config_app, name="config")
app.add_typer(apps_app, name="apps")
console = Console(stderr=True)
out = Console()
_state = {"debug": False}
ROOT = Path(__file__).resolve().parent.parent
ModelsDir = Annotated[
    Path, typer.Option("--models-dir", envvar="OUTPOST_MODELS_DIR", help="Model repository.")
]
StateFile = Annotated[
    Path | None,
    typer.Option(help="The running stack's state file (default: .outpost/stack.json)."),
]


def _running(state_file: Path | None) -> RunningStack | None:
    from outpost.running import find_running_stack
    from outpost.stack import StackSettings

    return find_running_stack(state_file or StackSettings().state_file)


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
    origin_grpc_ports: Annotated[
        str | None,
        typer.Option(help="Comma-separated OIP gRPC ports, one per origin (default: HTTP + 10)."),
    ] = None,
    origin_admin_ports: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated internal listener ports (/metrics, /healthz), one per origin "
            "(default: HTTP + 20)."
        ),
    ] = None,
    edge_port: Annotated[int | None, typer.Option(help="Edge port (default 8787).")] = None,
    edge_admin_port: Annotated[
        int | None,
        typer.Option(help="Edge internal listener: /metrics, detailed /healthz (default 8788)."),
    ] = None,
    models_dir: Annotated[Path | None, typer.Option(help="Model repository.")] = None,
    skip_model_build: Annotated[bool, typer.Option(help="Don't build demo models.")] = False,
    host: Annotated[
        str | None,
        typer.Option(
            help="Interface the edge listens on (default 127.0.0.1; 0.0.0.0: every interface)."
        ),
    ] = None,
    lan: Annotated[
        bool,
        typer.Option(
            "--lan",
            help="Let phones on your network in: the edge listens on every interface, and its "
            "LAN URL is printed with a QR code. Origins and Vault stay on loopback.",
        ),
    ] = False,
    public_url: Annotated[
        str | None,
        typer.Option(help="The edge URL phones use, when the detected LAN address is wrong."),
    ] = None,
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
    from pydantic import ValidationError

    from outpost.stack import StackSettings, run_stack

    overrides: dict[str, object] = {
        k: v
        for k, v in {
            "vault_port": vault_port,
            "edge_port": edge_port,
            "edge_admin_port": edge_admin_port,
            "models_dir": models_dir,
            "origin_ports": [int(p) for p in origin_ports.split(",")] if origin_ports else None,
            "host": host,
            "public_url": public_url,
            "origin_grpc_ports": [int(p) for p in origin_grpc_ports.split(",")]
            if origin_grpc_ports
            else None,
            "origin_admin_ports": [int(p) for p in origin_admin_ports.split(",")]
            if origin_admin_ports
            else None,
        }.items()
        if v is not None
    }
    if skip_model_build:
        overrides["build_models"] = False
    if lan:
        overrides["lan"] = True
    if monitor:
        overrides["monitor"] = True
    try:
        settings = StackSettings(**overrides)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise OutpostError(
            f"stack settings: {first['msg']}", hint="check the flags and OUTPOST_STACK_* variables"
        ) from None
    raise typer.Exit(run_stack(settings, console))


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
        str | None, typer.Option(help="Ask this origin instead of the running stack.")
    ] = None,
    disk: Annotated[
        bool, typer.Option("--disk", help="Read the model folder even when a stack runs.")
    ] = False,
    state_file: StateFile = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List models: what the running stack serves (each origin's version), else the folder.

    Without a running stack (or with --disk), lists the versions on disk and whether each
    validates.
    """
    from outpost.modelcheck import list_models

    stack = None if (url or disk) else _running(state_file)
    if url:
        console.print(f"models served by {url}", highlight=False)
    elif stack is not None:
        console.print(
            f"models served by {stack.describe()}: {', '.join(stack.origin_urls)}",
            highlight=False,
        )
    else:
        console.print(f"models on disk in {models_dir} (no stack running)", highlight=False)
    rows = list_models(models_dir, url, stack.origin_listings if stack else None)
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


@vault_app.command("caller-key")
def vault_caller_key(
    action: Annotated[
        str,
        typer.Argument(
            help="rotate (a new key; the current one stays accepted as previous) | retire "
            "(drop the previous key) | export (the edge's OUTPOST_EDGE_CALLER_KEY, to a pipe)"
        ),
    ],
    addr: Annotated[
        str | None,
        typer.Option(help="Vault address (default: VAULT_ADDR, else 127.0.0.1:8200)."),
    ] = None,
    state_dir: Annotated[
        Path,
        typer.Option(help="Local Vault state dir with the admin AppRole (without VAULT_TOKEN)."),
    ] = ROOT / ".outpost" / "vault",
) -> None:
    """The key the edge proves itself to the origins with (docs/vault.md#key-rotation).

    Uses VAULT_TOKEN (an operator's token) when set, else the local stack's admin AppRole.
    `export` writes the secret only to a pipe, e.g.
    `outpost vault caller-key export | npx wrangler secret put OUTPOST_EDGE_CALLER_KEY`.
    """
    import hvac

    from vault import caller_key
    from vault.bootstrap import admin_client
    from vault.server import StatePaths

    if action not in ("rotate", "retire", "export"):
        raise OutpostError(f"unknown action {action!r}", hint="rotate, retire or export")
    if action == "export" and sys.stdout.isatty():
        raise OutpostError(
            "export writes a secret: pipe it into its destination, never to a terminal",
            hint="outpost vault caller-key export | npx wrangler secret put "
            "OUTPOST_EDGE_CALLER_KEY",
        )
    addr = addr or os.environ.get("VAULT_ADDR") or "http://127.0.0.1:8200"
    try:
        if os.environ.get("VAULT_TOKEN"):
            client = hvac.Client(url=addr, token=os.environ["VAULT_TOKEN"], timeout=5)
        else:
            client = admin_client(addr, StatePaths(state_dir.resolve()))
        if action == "rotate":
            caller_key.rotate(client)
            console.print(
                "[green]caller key rotated[/]: origins accept the new and the previous key "
                "from their next secrets refresh; then give the edges the new key "
                "(`outpost vault caller-key export`) and `retire` the previous one"
            )
        elif action == "retire":
            done = caller_key.retire_previous(client)
            console.print("previous caller key retired" if done else "no previous caller key")
        else:
            sys.stdout.write(caller_key.current_setting(client) + "\n")
    except (LookupError, ValueError) as exc:
        raise OutpostError(
            f"caller key: {exc}", hint="`outpost vault bootstrap` creates it"
        ) from None
    except Exception as exc:  # hvac/requests errors: one line, no secret in it
        raise OutpostError(
            f"caller key {action} failed against {addr}: {type(exc).__name__}",
            hint="is Vault running, and is VAULT_TOKEN an operator's?",
        ) from exc


@vault_app.command("status")
def vault_status(
    addr: Annotated[
        str | None,
        typer.Option(help="Vault address (default: the running stack's, else 127.0.0.1:8200)."),
    ] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option(help="Local Vault state dir with the admin AppRole (default .outpost/vault)."),
    ] = None,
    state_file: StateFile = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Check Outpost's own Vault setup: server, mounts, policies, AppRole, signing key, secrets.

    Shows names, versions and times (such as the signing key's last rotation), never a secret.
    Exits 1 when a check fails.
    """
    from vault.status import as_rows, outpost_status

    stack = _running(state_file)
    vault = stack.state.get("vault", {}) if stack else {}
    addr = addr or vault.get("addr") or "http://127.0.0.1:8200"
    state_dir = state_dir or Path(vault.get("state_dir") or ROOT / ".outpost" / "vault")
    checks = outpost_status(addr, state_dir)
    failed = [c for c in checks if not c.ok]
    if as_json:
        out.print_json(json.dumps(as_rows(checks)))
    else:
        table = Table("check", "", "detail")
        for check in checks:
            table.add_row(check.name, "[green]ok[/]" if check.ok else "[red]FAIL[/]", check.detail)
        out.print(table)
    if failed:
        hint = (
            "start the stack with `./dev up`"
            if checks[0].name == "server" and not checks[0].ok
            else "`outpost vault bootstrap` restores what the bootstrap creates"
        )
        raise OutpostError(f"{len(failed)} Vault check(s) failed: {failed[0].name}", hint=hint)


@config_app.command("show")
def config_show(
    component: Annotated[
        str, typer.Argument(help="origin | vault | identity | tracing | edge | stack | all")
    ] = "all",
    env_only: Annotated[
        bool,
        typer.Option("--env", help="Env + defaults, even when a stack runs."),
    ] = False,
    state_file: StateFile = None,
) -> None:
    """Print each component's configuration, secrets redacted: the running stack's when one is
    up, else what env + defaults would start. The first line (on stderr) says which."""
    from outpost.effective_config import effective_config

    stack = None if env_only else _running(state_file)
    if stack is not None:
        console.print(
            f"configuration of {stack.describe()}, from {stack.state_file}", highlight=False
        )
    else:
        console.print(
            "configuration from env + defaults" + ("" if env_only else " (no stack running)"),
            highlight=False,
        )
    shown = effective_config(component, stack.state if stack else None)
    out.print_json(json.dumps(shown, default=str))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench(
    ctx: typer.Context,
    which: Annotated[
        str | None, typer.Argument(help="Benchmark to run; none lists them.", show_default=False)
    ] = None,
) -> None:
    """Run a benchmark from bench/ (never part of the tests); results go to bench/results/.

    Extra arguments go to its script: `outpost bench edge --rounds 3 --out /tmp/edge.json`;
    `outpost bench edge -- --help` lists them.
    """
    from outpost.bench import BENCHMARKS, run

    if which is None:
        table = Table("benchmark", "script", "measures")
        for column in table.columns[:2]:  # names and paths whole, to copy; the text wraps
            column.no_wrap = True
        for name, entry in BENCHMARKS.items():
            table.add_row(name, entry.script, entry.measures)
        out.print(table)
        return
    raise typer.Exit(run(which, list(ctx.args)))


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
