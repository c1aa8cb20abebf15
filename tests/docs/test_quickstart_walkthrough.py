"""The quickstart's curl walkthrough, parsed from docs/quickstart.md, run against a real stack."""

from __future__ import annotations

import os
import subprocess
from typing import Any

from tests.docs.walkthrough import QUICKSTART, parse_walkthrough, run_walkthrough


def test_walkthrough_parses_into_checked_curl_commands() -> None:
    steps = parse_walkthrough(QUICKSTART.read_text(encoding="utf-8"))
    curls = [s for s in steps if s.command.startswith("curl ")]
    assert len(curls) >= 6
    assert all(s.expect for s in curls), "every curl command documents what it returns"
    assert any("x-cache: HIT" in e for s in curls for e in s.expect)


def test_quickstart_walkthrough_runs_against_the_stack(running_stack: dict[str, Any]) -> None:
    token = subprocess.run(
        running_stack["token_command"], capture_output=True, text=True, timeout=60, check=False
    )
    assert token.returncode == 0, token.stderr
    env = {
        **os.environ,
        "EDGE": running_stack["edge"]["url"],
        "TOKEN": token.stdout.strip(),
    }
    steps = parse_walkthrough(QUICKSTART.read_text(encoding="utf-8"))
    outcomes = run_walkthrough(steps, env)
    failures = [
        f"$ {o.step.command}\n  exit {o.status}, missing {o.missing()}\n  got: {o.output[:600]}"
        for o in outcomes
        if o.status != 0 or o.missing()
    ]
    assert not failures, "\n\n".join(failures)
