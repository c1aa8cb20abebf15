"""Every command `outpost --help` lists answers its own `--help`, and the benchmarks it offers
exist (the peers benchmark once pointed at a script that did not)."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from outpost.bench import BENCHMARKS
from outpost.cli import ROOT, app


def command_paths(group: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path of the CLI, groups included (`("models", "list")`, ...)."""
    paths = [prefix] if prefix else []
    if isinstance(getattr(group, "commands", None), dict):  # a group (typer vendors click)
        for name, command in group.commands.items():  # type: ignore[attr-defined]
            paths += command_paths(command, (*prefix, name))
    return paths


def test_every_listed_command_answers_its_help() -> None:
    paths = command_paths(typer.main.get_command(app))
    assert {
        ("up",),
        ("models", "list"),
        ("vault", "status"),
        ("config", "show"),
        ("bench",),
    } <= set(paths)
    runner = CliRunner()
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output, path


def test_every_benchmark_the_cli_offers_has_its_script() -> None:
    for name, entry in BENCHMARKS.items():
        assert (ROOT / entry.script).is_file(), name
