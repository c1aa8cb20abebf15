"""The `outpost` command line: run the stack, test it, manage models, Vault and tokens."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console

from outpost.errors import OutpostError

app = typer.Typer(
    name="outpost",
    help="Outpost: edge + origin backend for mobile apps with ML inference.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
_state = {"debug": False}


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
) -> None:
    _state["debug"] = debug


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def test(ctx: typer.Context) -> None:
    """Run every check: ruff, the whole pytest suite, and the strict docs build.

    Extra arguments go to pytest (e.g. `outpost test -k vault -x`).
    """
    from outpost.testing import run_all_checks

    raise typer.Exit(run_all_checks(list(ctx.args), console))


def main() -> None:
    """Entry point that turns OutpostError into one clear line plus a hint."""
    try:
        app()
    except OutpostError as exc:
        if _state["debug"]:
            raise
        console.print(f"[bold red]error:[/] {exc.message}")
        if exc.hint:
            console.print(f"[yellow]hint:[/] {exc.hint}")
        sys.exit(1)


if __name__ == "__main__":
    main()
