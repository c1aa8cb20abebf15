"""Command lines the benchmarks share: repetitions and rounds for the micro-benchmarks; a model,
seconds per window and a warm-up for the scripts that load one origin."""

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


def model_parser(
    description: str, out: Path, seconds: float, root: Path
) -> argparse.ArgumentParser:
    """`--models-dir` (root/models), `--model` (minilm), `--seconds` (`seconds` per window),
    `--warmup` (3 s) and `--out` (`out`; '-' for none); the script adds its own and parses."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--models-dir", type=Path, default=root / "models")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--seconds", type=float, default=seconds, help="per measured window")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument("--out", type=Path, default=out, help="results JSON ('-': none)")
    return parser
