"""`outpost apps create|list|revoke`: app API keys and their attestation settings in Vault.

The commands log in to Vault with the admin AppRole of the local state dir (as `outpost vault
bootstrap` does). A new key is printed once, on stdout, for the developer to put in the app's
build configuration; it is never logged and Vault keeps only its HMAC.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from outpost.errors import OutpostError

app = typer.Typer(
    help="Mobile apps: API keys, registration caps and attestation, kept in Vault.",
    no_args_is_help=True,
)
out = Console()
ROOT = Path(__file__).resolve().parent.parent
Addr = Annotated[str, typer.Option(help="Vault address.")]
StateDir = Annotated[Path, typer.Option(help="Local Vault state dir (its admin AppRole).")]
DEFAULT_ADDR = "http://127.0.0.1:8200"
DEFAULT_STATE = ROOT / ".outpost" / "vault"


def _admin(addr: str, state_dir: Path) -> Any:
    from vault.bootstrap import admin_client
    from vault.server import StatePaths

    paths = StatePaths(state_dir.resolve())
    if not paths.admin_secret_id.exists():
        raise OutpostError(
            f"{paths.admin_secret_id}: missing (the local Vault's admin AppRole)",
            hint="start the stack once with `./dev up`, or pass --state-dir",
        )
    try:
        return admin_client(addr, paths)
    except Exception as exc:  # requests/hvac errors: one line, no secret in it
        raise OutpostError(
            f"cannot log in to Vault at {addr}: {type(exc).__name__}",
            hint="is the stack running (`./dev up`)? pass --addr for another Vault",
        ) from None


def _edge_url() -> str:
    from outpost.stack import StackSettings

    try:
        return json.loads(StackSettings().state_file.read_text())["edge"]["url"]
    except (OSError, ValueError, KeyError):
        return StackSettings().edge_url


def _run(what: str, fn: Any) -> Any:
    from outpost.apps import AppsError

    try:
        return fn()
    except AppsError as exc:
        raise OutpostError(str(exc)) from None
    except OutpostError:
        raise
    except Exception as exc:
        raise OutpostError(f"{what} failed: {type(exc).__name__}", hint="is Vault up?") from None


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="App id: 1-63 of a-z, 0-9 and '-'.")],
    scope: Annotated[str, typer.Option(help="Scopes its devices may ask for.")] = (
        "inference models:read"
    ),
    attestation: Annotated[
        str, typer.Option(help="Attestation at registration: off, monitor or enforce.")
    ] = "off",
    attested_app_id: Annotated[
        list[str] | None,
        typer.Option(
            help="Accepted attestation subject (Firebase app id, e.g. 1:123:android:abc); "
            "repeat it. Default: the app's name (the local attestation issuer's subject)."
        ),
    ] = None,
    register_limit: Annotated[
        int | None, typer.Option(help="Registrations per window (default: the origins').")
    ] = None,
    register_window: Annotated[int | None, typer.Option(help="Window in seconds.")] = None,
    rotate: Annotated[
        bool, typer.Option(help="Give an existing app a new key (the old one stops working).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    addr: Addr = DEFAULT_ADDR,
    state_dir: StateDir = DEFAULT_STATE,
) -> None:
    """Create an app and print its API key (once) and what the app needs to register devices."""
    from outpost.apps import AppSpec, create_app

    spec = AppSpec(
        name,
        scope,
        attestation,
        tuple(attested_app_id or ()),
        register_limit,
        register_window,
    )
    client = _admin(addr, state_dir)
    api_key = _run("creating the app", lambda: create_app(client, spec, rotate=rotate))
    edge = _edge_url()
    info = {
        "app_id": name,
        "api_key": api_key,
        "token_endpoint": f"{edge}/oauth/token",
        "grant_type": "urn:outpost:params:oauth:grant-type:device-registration",
        "scope": scope,
        "attestation": attestation,
        "attested_app_ids": list(attested_app_id or ([name] if attestation != "off" else [])),
    }
    if as_json:
        out.print_json(json.dumps(info))
        return
    out.print(f"App [bold]{name}[/] {'has a new key' if rotate else 'created'}.", highlight=False)
    out.print(
        "API key (shown once: put it in the app's build configuration, never in a log):",
        highlight=False,
    )
    out.print(f"  {api_key}", highlight=False, soft_wrap=True)
    out.print(
        f"Devices register at {info['token_endpoint']} with grant_type={info['grant_type']},\n"
        "the api_key and a DPoP proof from the device's own key (docs/mobile.md).",
        highlight=False,
    )
    if attestation != "off":
        out.print(
            f"Attestation: {attestation}, accepting {', '.join(info['attested_app_ids'])}.\n"
            f"Locally, tokens come from {edge}/attestation/local/token; in production from "
            "Firebase App Check (docs/device-trust.md).",
            highlight=False,
        )
    out.print("Origins pick the change up within their secrets refresh (60 s by default).")


@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    addr: Addr = DEFAULT_ADDR,
    state_dir: StateDir = DEFAULT_STATE,
) -> None:
    """List apps with their settings (never a key)."""
    from outpost.apps import list_apps

    client = _admin(addr, state_dir)
    rows = _run("listing apps", lambda: list_apps(client))
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table("app", "status", "scope", "attestation", "attested ids", "cap")
    for row in rows:
        cap = (
            f"{row['register_limit'] or 'default'}/{row['register_window'] or 'default'} s"
            if row["register_limit"] or row["register_window"]
            else "default"
        )
        table.add_row(
            row["name"],
            row["status"],
            row["scope"],
            row["attestation"],
            ", ".join(row["attested_app_ids"]) or "-",
            cap,
        )
    out.print(table)


@app.command("revoke")
def revoke(
    name: Annotated[str, typer.Argument(help="App id.")],
    addr: Addr = DEFAULT_ADDR,
    state_dir: StateDir = DEFAULT_STATE,
) -> None:
    """Stop new registrations with an app's key; devices already registered keep working."""
    from outpost.apps import revoke_app

    client = _admin(addr, state_dir)
    _run("revoking the app", lambda: revoke_app(client, name))
    out.print(
        f"App [bold]{name}[/] revoked: its key registers no new device once the origins have "
        "refreshed their secrets (60 s by default).",
        highlight=False,
    )
