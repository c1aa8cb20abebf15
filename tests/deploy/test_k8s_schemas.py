"""The Kubernetes manifests pass strict, offline schema validation (kubernetes-validate)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import (
    K8S,
    KUBERNETES_VERSIONS,
    kustomize_build,
    kustomize_resources,
    validate,
)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_is_valid_against_strict_schemas(version: str) -> None:
    result = validate(kustomize_resources(), version)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == len(kustomize_resources())


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_what_kustomize_builds_is_valid_against_strict_schemas(
    version: str, tmp_path: Path
) -> None:
    """The real kustomize output (namespace, labels and image tag applied), not only the files."""
    rendered = tmp_path / "origin.yaml"
    rendered.write_text(kustomize_build(K8S))
    docs = [d for d in yaml.safe_load_all(rendered.read_text()) if d]
    assert len(docs) == len(kustomize_resources())
    result = validate([rendered], version)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == len(docs)
    origin = next(d for d in docs if d["kind"] == "Deployment")
    assert origin["spec"]["template"]["spec"]["containers"][0]["image"] == "outpost-origin:0.1.0"


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
