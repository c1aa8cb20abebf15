"""Parse the curl walkthrough out of docs/quickstart.md and run it as one bash script."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "docs" / "quickstart.md"
_BLOCK = re.compile(
    r"<!-- walkthrough:start -->\s*```bash\n(.*?)```\s*<!-- walkthrough:end -->", re.S
)
_EXPECT = "# expect:"


@dataclass
class Step:
    command: str
    expect: list[str] = field(default_factory=list)


def parse_walkthrough(markdown: str) -> list[Step]:
    """Commands (continuation lines joined) with the `# expect:` lines that follow each."""
    match = _BLOCK.search(markdown)
    if match is None:
        raise ValueError("no walkthrough block (<!-- walkthrough:start --> ```bash ...) found")
    steps: list[Step] = []
    pending = ""
    for raw in match.group(1).splitlines():
        line = raw.strip()
        if line.startswith(_EXPECT):
            if not steps or pending:
                raise ValueError(f"'{line}' follows no command")
            steps[-1].expect.append(line[len(_EXPECT) :].strip())
            continue
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        steps.append(Step(pending + line))
        pending = ""
    if pending:
        raise ValueError("the walkthrough ends inside a continued command")
    return steps


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text).lower()


@dataclass
class Outcome:
    step: Step
    output: str
    status: int

    def missing(self) -> list[str]:
        """Expected snippets absent from the output (whitespace and case ignored)."""
        got = _squash(self.output)
        return [e for e in self.step.expect if _squash(e) not in got]


def run_walkthrough(
    steps: list[Step], env: dict[str, str], cwd: Path = ROOT, timeout: float = 120.0
) -> list[Outcome]:
    """Run every step in one bash process (so assignments carry over), output split per step."""
    lines = ["set -u"]
    for i, step in enumerate(steps):
        lines.append(f"echo '@@step {i}@@'")
        lines.append(f'{step.command}; echo; echo "@@status {i} $?@@"')
    proc = subprocess.run(
        ["bash", "-c", "\n".join(lines)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    outcomes = []
    for i, step in enumerate(steps):
        m = re.search(rf"@@step {i}@@\n(.*?)\n@@status {i} (\d+)@@", proc.stdout, re.S)
        if m is None:
            outcomes.append(Outcome(step, proc.stdout[-2000:] + proc.stderr[-2000:], -1))
        else:
            outcomes.append(Outcome(step, m.group(1), int(m.group(2))))
    return outcomes
