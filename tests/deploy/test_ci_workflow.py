"""The GitHub Actions workflow: valid for GitHub, and it runs the README's test command on the
Python and Node versions the README names."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.deploy.conftest import BIN, ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


def check_schema(path: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema against its vendored copy of GitHub's workflow schema (offline)."""
    argv = [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows"]
    return subprocess.run([*argv, str(path)], capture_output=True, text=True, timeout=60)


def test_the_workflow_is_valid_for_github_actions() -> None:
    result = check_schema(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_a_misspelt_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "ci.yml"
    broken.write_text(WORKFLOW.read_text().replace("runs-on:", "runs_on:"))
    assert check_schema(broken).returncode != 0


def test_the_workflow_runs_dev_test_on_python_3_11_and_node_20() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert {"push", "pull_request"} <= set(triggers)
    (job,) = workflow["jobs"].values()
    assert job["runs-on"].startswith("ubuntu") and job["timeout-minutes"] <= 90
    steps = job["steps"]
    versions = {s["uses"].split("@")[0]: s.get("with", {}) for s in steps if "uses" in s}
    assert versions["actions/setup-python"]["python-version"] == "3.11"
    assert versions["actions/setup-node"]["node-version"] == "20"
    assert "actions/checkout" in versions
    assert steps[-1]["run"] == "bash .ci/run"
    ci_run = (ROOT / ".ci" / "run").read_text().splitlines()
    assert ci_run[-1] == "exec ./dev test"
