"""The docs name only routes, settings and commands that exist (`tests/docs/doc_claims.py`), and
the check catches a rename: run on a copy of the code with one route, one setting and one command
renamed, it names exactly the pages that still use the old names."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs import doc_claims
from tests.docs.doc_claims import ROOT, extract


def test_every_route_setting_and_command_the_docs_name_exists() -> None:
    problems = doc_claims.check()
    assert not problems, "the docs name what the code lacks:\n" + "\n".join(map(str, problems))


def test_the_extraction_sees_each_kind_of_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "Call `POST /v1/embeddings` or `/v2/models/{model}[/versions/{version}]/infer`;\n"
        "set `OUTPOST_EDGE_RATE_LIMITS` (any `OUTPOST_STACK_*`).\n\n"
        "```bash\n"
        "curl -s $EDGE/v1/models -H 'x: y'\n"
        "./dev models validate models/minilm\n"
        "npm run deploy:dry-run\n"
        "```\n"
    )
    monkeypatch.setattr(doc_claims, "ROOT", tmp_path)
    claims = {(c.kind, c.name) for c in extract(page)}
    assert claims == {
        ("route", "POST /v1/embeddings"),
        ("route", "/v2/models/{model}[/versions/{version}]/infer"),
        ("route", "/v1/models"),
        ("setting", "OUTPOST_EDGE_RATE_LIMITS"),
        ("setting", "OUTPOST_STACK_"),
        ("command", "models validate"),
        ("command", "npm run deploy:dry-run"),
    }


RENAMES = [
    # (file in the copy, old text, new text): what a careless refactor would do
    ("edge/core/routes.py", "/v1/(embeddings|classifications)", "/v1/(embedding|classifications)"),
    ("origin/api/openai.py", '@router.post("/embeddings")', '@router.post("/embedding")'),
    ("edge/config.py", "    health_interval_seconds: float", "    health_check_seconds: float"),
    ("outpost/cli.py", '@config_app.command("show")', '@config_app.command("print")'),
]


def test_a_renamed_route_setting_and_command_fail_the_check(tmp_path: Path) -> None:
    for package in doc_claims.PRODUCT:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    for file, old, new in RENAMES:
        path = tmp_path / file
        text = path.read_text()
        assert text.count(old) == 1, (file, old)
        path.write_text(text.replace(old, new))

    # The copy comes first on sys.path (the working directory); the checker and docs are ours.
    result = subprocess.run(
        [sys.executable, "-m", "tests.docs.doc_claims"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    reported = result.stdout.splitlines()
    names = {line.split(": ", 1)[1] for line in reported}
    assert names == {
        "route POST /v1/embeddings",
        "route /v1/embeddings",
        "setting OUTPOST_EDGE_HEALTH_INTERVAL_SECONDS",
        "command config show",
    }, result.stdout
    # Each line points at a real page and line that uses the old name.
    for line in reported:
        where, what = line.split(": ", 1)
        page, number = where.rsplit(":", 1)
        text = (ROOT / page).read_text().splitlines()[int(number) - 1]
        old = what.split(" ", 1)[1].removeprefix("POST ").split()[-1]
        assert old in text, line
