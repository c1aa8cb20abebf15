"""Shared helpers for the deployment checks: where the files are, parsed manifests."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "origin.Dockerfile"
BIN = Path(sys.executable).parent


def kustomize_resources() -> list[Path]:
    """The manifest files `kubectl apply -k deploy/k8s` would apply, in order."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return [K8S / name for name in kustomization["resources"]]


def load_resources() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in kustomize_resources():
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def find(kind: str, docs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The one resource of `kind` in the kustomize base."""
    matches = [d for d in docs or load_resources() if d["kind"] == kind]
    assert len(matches) == 1, f"expected exactly one {kind}, found {len(matches)}"
    return matches[0]


@pytest.fixture(scope="module")
def resources() -> list[dict[str, Any]]:
    return load_resources()


@pytest.fixture(scope="module")
def deployment(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return find("Deployment", resources)


@pytest.fixture(scope="module")
def origin_container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "origin")
