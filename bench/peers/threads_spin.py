"""onnxruntime's threads spinning briefly inside a batch (the default) against sleeping between
operators (`onnx.allow_spinning: false`), alone and behind the edge, at several loads.

    ./dev bench threads-spin [--pairs 5] [--duration 5] [--out FILE]

All four servers are started once and measured in alternation (paired.alternate), at 1, 8 and
32 clients of short single sentences and one client of long ones:

- `outpost-fp32`, `edge-nocache`: the origin with the default settings (threads spin for at most
  `onnx.spin_duration_us` while waiting for the next operator's work, and stop when the batch
  ends), alone and behind the edge (cache off);
- `outpost-fp32-sleep`, `edge-nocache-sleep`: the same with `allow_spinning: false`.

Per cell and pair it takes spin/sleep ratios of throughput, p50 and p99, windows seconds apart;
the medians and ranges over the pairs are the result. Results: bench/results/threads-spin.json.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import run
import servers
from paired import alternate, head, options

OUT = run.ROOT / "bench" / "results" / "threads-spin.json"
ORDER = ["outpost-fp32", "outpost-fp32-sleep", "edge-nocache", "edge-nocache-sleep"]
CELLS = [("short", 1, 1), ("short", 1, 8), ("short", 1, 32), ("long", 1, 1)]
# (spinning, sleeping) servers compared.
PAIRS_COMPARED = {
    "origin": ("outpost-fp32", "outpost-fp32-sleep"),
    "through_edge": ("edge-nocache", "edge-nocache-sleep"),
}


def _cell_name(cell: dict) -> str:
    return f"{cell['input']}:{cell['batch']}:{cell['concurrency']}"


def summarise(windows: dict[str, list[dict]]) -> dict:
    """Per compared pair and cell: spin/sleep ratios of throughput, p50 and p99 per pair of
    windows, with their medians and ranges."""
    out: dict = {}
    for label, (spin, sleep) in PAIRS_COMPARED.items():
        per_cell: dict = {}
        for a, b in zip(windows[spin], windows[sleep], strict=True):
            ratios = per_cell.setdefault(_cell_name(a), {"throughput": [], "p50": [], "p99": []})
            if a["sentences_per_s"] and b["sentences_per_s"]:
                ratios["throughput"].append(round(a["sentences_per_s"] / b["sentences_per_s"], 3))
                ratios["p50"].append(round(a["p50_ms"] / b["p50_ms"], 3))
                ratios["p99"].append(round(a["p99_ms"] / b["p99_ms"], 3))
        out[label] = {
            cell: {
                metric: {
                    "per_pair": values,
                    "median": round(statistics.median(values), 3) if values else None,
                    "range": [min(values), max(values)] if values else None,
                }
                for metric, values in ratios.items()
            }
            for cell, ratios in per_cell.items()
        }
    return out


def main() -> None:
    args = options(__doc__, OUT, pairs=5, duration=5.0)
    specs = servers.by_name(run.ORIGIN_SETTINGS)
    windows = alternate(specs, ORDER, args.pairs, args.duration, "spin", cells=CELLS)
    result = {
        **head(ORDER),
        "cells": [f"{k}:{b}:{c}" for k, b, c in CELLS],
        "duration_s": args.duration,
        "spin_vs_sleep": summarise(windows),
        "windows": windows,
    }
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result["spin_vs_sleep"], indent=1))


if __name__ == "__main__":
    main()
