"""Long inputs under load: served throughput against the engine's own limit, and the batch
token budget (`max_batch_tokens`: 1024 now, 8192 before) side by side.

    .outpost/bench-venvs/loadgen/bin/python bench/peers/long_inputs.py [--pairs 4] [--duration 8]

`engine_limit.py` measures the limit before and after the windows (their mean is used, so a
drift in background load shows as a gap between the two): the origin's MiniLM in-process,
batches of long inputs (121-129 tokens) back to back, best batch size. `outpost-fp32` (the
defaults) and `outpost-fp32-wide` (the old budget, which let 32 long inputs share a batch) are
started once with infinity-emb (optimum engine, fp32; `bench/peers/setup.sh infinity`) and
measured in alternation (paired.alternate) at 1, 8 and 32 clients of single long inputs and 4
clients of 16 long inputs; each window is also a share of the engine's limit. Per cell: the
median over pairs of each server's share of the limit, of default/wide throughput and p99, and
of default/infinity throughput and p99. Results: bench/results/long-inputs.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import run
import servers
from paired import alternate

OUT = run.ROOT / "bench" / "results" / "long-inputs.json"
ORDER = ["outpost-fp32", "outpost-fp32-wide", "infinity-optimum"]
CELLS = [("long", 1, 1), ("long", 1, 8), ("long", 1, 32), ("long", 16, 4)]
TARGET = 0.95


def engine_limit(models_dir: str) -> dict:
    limit = run.engine_limit(models_dir)
    print(
        f"engine limit: {limit['limit_inputs_per_s']} long inputs/s at batch {limit['best_batch']}",
        flush=True,
    )
    return limit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--out", type=Path, default=OUT, help="results file")
    args = parser.parse_args()
    ctx: dict = {}
    servers.prepare_origin_models(ctx, run.STATE)
    before = engine_limit(ctx["models_dir_v1"])
    specs = servers.by_name(run.ORIGIN_SETTINGS)
    windows = alternate(specs, ORDER, args.pairs, args.duration, "long", cells=CELLS)
    after = engine_limit(ctx["models_dir_v1"])
    best = round((before["limit_inputs_per_s"] + after["limit_inputs_per_s"]) / 2, 2)
    summary: dict = {}
    keys = ("share", "share_wide", "throughput", "p99", "vs_infinity", "p99_vs_infinity")
    for a, b, c in zip(*(windows[name] for name in ORDER), strict=True):
        cell = f"{a['batch']}x{a['concurrency']}"
        s = summary.setdefault(cell, {k: [] for k in keys})
        s["share"].append(round(a["sentences_per_s"] / best, 3))
        s["share_wide"].append(round(b["sentences_per_s"] / best, 3))
        for key, p99_key, other in (
            ("throughput", "p99", b),
            ("vs_infinity", "p99_vs_infinity", c),
        ):
            if a["sentences_per_s"] and other["sentences_per_s"]:
                s[key].append(round(a["sentences_per_s"] / other["sentences_per_s"], 3))
            if a["p99_ms"] and other["p99_ms"]:
                s[p99_key].append(round(a["p99_ms"] / other["p99_ms"], 3))
    medians = {
        cell: {k: round(statistics.median(v), 3) if v else None for k, v in s.items()}
        for cell, s in summary.items()
    }
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "engine_limit": {"inputs_per_s": best, "before": before, "after": after},
        "cells": [f"{k}:{b}:{c}" for k, b, c in CELLS],
        "duration_s": args.duration,
        "order": "alternating: " + " -> ".join(ORDER) + ", reversed every other pair",
        "per_pair": summary,
        "medians": medians,
        "target": {
            "rule": f"single long inputs at 8 and 32 clients >= {TARGET}x the engine's limit",
            "met": all((medians.get(c) or {}).get("share", 0) >= TARGET for c in ("1x8", "1x32")),
        },
        "vs_infinity": {
            "rule": "every long-input cell at or ahead of infinity-emb (optimum) in throughput",
            "met": all((m.get("vs_infinity") or 0) >= 1.0 for m in medians.values()),
        },
        "windows": windows,
    }
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: result[k] for k in ("medians", "target", "vs_infinity")}, indent=1))


if __name__ == "__main__":
    main()
