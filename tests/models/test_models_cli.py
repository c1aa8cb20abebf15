"""`outpost models import|build-demo` as a user runs them (typer sub-app, real files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from outpost.modelkit.cli import app
from outpost.modelkit.errors import CheckpointError

runner = CliRunner()


def test_cli_import_adds_versions_and_reports_verification(
    checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    src = str(checkpoints["embeddings"])
    args = ["import", src, "--name", "tiny", "--models-dir", str(tmp_path), "--json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert report["version"] == 1 and report["export"]["min_cosine"] >= 0.9999
    second = runner.invoke(app, [*args, "--int8"])
    assert second.exit_code == 0, second.output
    report = json.loads(second.stdout)
    assert report["version"] == 2 and report["int8_report"]["mean_cosine"] > 0.9
    assert (tmp_path / "tiny" / "2" / "model.onnx").is_file()


def test_cli_import_of_a_non_checkpoint_fails_with_the_file_named(tmp_path: Path) -> None:
    models = tmp_path / "models"
    result = runner.invoke(
        app, ["import", str(tmp_path), "--name", "x", "--models-dir", str(models)]
    )
    assert result.exit_code != 0
    assert isinstance(result.exception, CheckpointError)
    assert "config.json: missing" in result.exception.message
    assert not models.exists()  # nothing half-made in the repository


def test_cli_help_lists_both_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "import" in result.stdout and "build-demo" in result.stdout


@pytest.mark.parametrize("task", ["tensor", "sentiment"])
def test_cli_import_rejects_unknown_task(
    task: str, checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    src = str(checkpoints["embeddings"])
    result = runner.invoke(
        app, ["import", src, "--name", "x", "--task", task, "--models-dir", str(tmp_path)]
    )
    assert result.exit_code != 0
    assert "--task" in result.exception.message
