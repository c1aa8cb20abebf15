"""Shared helpers for the deployment checks: where the files are, parsed manifests, what each
deployable declares and imports."""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "origin.Dockerfile"
BIN = Path(sys.executable).parent


def dist(requirement: str) -> str:
    """The normalised distribution name of a requirement (`PyJWT[crypto]>=2` -> `pyjwt`)."""
    return Requirement(requirement).name.lower().replace("_", "-")


def extra(name: str) -> dict[str, str]:
    """pyproject.toml's optional dependencies `name`: distribution -> its requirement."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {dist(r): str(Requirement(r)) for r in project["optional-dependencies"][name]}


def imports_of(package: Path) -> set[str]:
    """Top-level names of what the modules under `package` import, less the standard library."""
    names: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"__future__"}


def closure(requirements: set[str]) -> set[str]:
    """Distribution names reachable from `requirements` through installed metadata (with
    extras)."""
    seen: set[str] = set()
    todo = [Requirement(line) for line in requirements]
    while todo:
        req = todo.pop()
        key = dist(str(req))
        if key in seen:
            continue
        seen.add(key)
        for dep in metadata.requires(req.name) or []:
            sub = Requirement(dep)
            env = {"extra": next(iter(req.extras), "")}
            if sub.marker is None or sub.marker.evaluate(env):
                todo.append(sub)
    return seen


def uncovered(imports: set[str], requirements: set[str]) -> set[str]:
    """The imported top-level names no distribution reachable from `requirements` provides."""
    provided = closure(requirements)
    owners = metadata.packages_distributions()
    return {
        name
        for name in imports
        if not {d.lower().replace("_", "-") for d in owners.get(name, [name])} & provided
    }


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
