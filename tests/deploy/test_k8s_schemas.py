"""The Kubernetes manifests pass strict, offline schema validation (kubernetes-validate)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import BIN, K8S, kustomize_resources

# The oldest and the newest Kubernetes minor versions the manifests promise to work on.
KUBERNETES_VERSIONS = ["1.31.0", "1.37.0"]


def validate(paths: list[Path], version: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "kubernetes-validate"), "--strict", "-k", version, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_is_valid_against_strict_schemas(version: str) -> None:
    result = validate(kustomize_resources(), version)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == len(kustomize_resources())


def test_kustomization_lists_every_manifest_in_the_folder() -> None:
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert {p.name for p in kustomize_resources()} == on_disk


def test_strict_validation_rejects_an_unknown_field(tmp_path: Path) -> None:
    """The validator is not a rubber stamp: a misspelt field in the Deployment fails."""
    deployment = yaml.safe_load((K8S / "deployment.yaml").read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbes"] = container.pop("readinessProbe")
    broken = tmp_path / "deployment.yaml"
    broken.write_text(yaml.safe_dump(deployment))
    result = validate([broken], KUBERNETES_VERSIONS[-1])
    assert result.returncode != 0
    assert "readinessProbes" in result.stdout + result.stderr
