"""The command line the micro-benchmarks share: repetitions per measurement, rounds, output."""

from __future__ import annotations

import argparse
from pathlib import Path


def reps_rounds(description: str, reps: int, what: str, out: Path) -> argparse.Namespace:
    """`--reps` (`what` per measurement), `--rounds` (5) and `--out` (`out`), parsed."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--reps", type=int, default=reps, help=f"{what} per measurement")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=out)
    return parser.parse_args()
