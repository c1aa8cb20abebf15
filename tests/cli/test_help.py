"""Every command `outpost --help` lists answers its own `--help`, and the benchmarks it offers
exist (the peers benchmark once pointed at a script that did not)."""

from __future__ import annotations

import re

import typer
from typer.testing import CliRunner

from outpost.cli import BENCHMARKS, ROOT, app


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


def test_the_benchmarks_the_help_offers_are_the_ones_that_exist() -> None:
    result = CliRunner().invoke(app, ["bench", "--help"])
    offered = re.search(r"\b(origin \| peers)\b", result.output)
    assert offered is not None, result.output
    assert set(offered.group(1).split(" | ")) == set(BENCHMARKS)
    setup = (ROOT / "bench" / "peers" / "setup.sh").read_text()
    for script, venv in BENCHMARKS.values():
        assert (ROOT / script).is_file(), script
        if venv is not None:  # the venv the peers' setup script creates
            assert f"make_venv {venv.rsplit('/', 1)[-1]} " in setup


def test_a_benchmark_whose_venv_is_missing_says_how_to_make_it(tmp_path, monkeypatch) -> None:
    import outpost.cli as cli

    monkeypatch.setattr(cli, "ROOT", tmp_path)  # a checkout where setup.sh never ran
    result = CliRunner().invoke(app, ["bench", "peers"])
    assert result.exit_code == 1
    assert isinstance(result.exception, cli.OutpostError)
    assert "bench/peers/setup.sh" in (result.exception.hint or "")
