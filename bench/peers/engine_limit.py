"""The engine's own limit for an input kind: the origin's pipeline run in-process, batches back
to back, no HTTP, no queue, at each batch size; the best batch is the limit served throughput
is compared with (project venv only).

    .venv/bin/python bench/peers/engine_limit.py MODELS_DIR [--kind long] [--seconds 3]
        [--batches 1,2,4,8,16,32] [--rounds 2]

MODELS_DIR is a repository of one model (as prepare_models.py builds for each origin run); the
model is loaded with the origin's own loader (same session options, tokenizer and pooling).
Batch sizes are measured in alternating order over `--rounds` rounds (reversed every other
round) and each size keeps its median, so background load moves every size alike. The inputs
are the benchmark's own (texts.py), tokenized once beforehand: tokenizing is part of serving,
not of the engine, and stays on the served side of the ratio. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.lib.texts import make_texts  # noqa: E402


def measure(models_dir: Path, kind: str, seconds: float, batches: list[int], rounds: int) -> dict:
    from origin.repository.loader import load_version, version_dirs

    (model_dir,) = [p for p in models_dir.iterdir() if (p / "model.yaml").is_file()]
    version = max(version_dirs(model_dir))
    pipeline = load_version(model_dir.name, model_dir, version).pipeline
    items = pipeline.tokenize(make_texts(kind, 512))
    per_batch: dict[int, list[float]] = {b: [] for b in batches}
    cpu_per_input: dict[int, list[float]] = {b: [] for b in batches}
    for r in range(rounds):
        for b in batches if r % 2 == 0 else list(reversed(batches)):
            done, k = 0, 0
            cpu0 = os.times()
            start = time.perf_counter()
            while time.perf_counter() - start < seconds:
                pipeline.run_batch(items[k : k + b])
                k = (k + b) % (len(items) - b)
                done += b
            per_batch[b].append(done / (time.perf_counter() - start))
            cpu1 = os.times()
            cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
            cpu_per_input[b].append(cpu / done * 1000)
    medians = {b: round(statistics.median(v), 2) for b, v in per_batch.items()}
    best = max(medians, key=lambda b: medians[b])
    return {
        "model": model_dir.name,
        "version": version,
        "kind": kind,
        "tokens": [min(it.cost for it in items), max(it.cost for it in items)],
        "seconds_per_window": seconds,
        "rounds": rounds,
        "inputs_per_s_by_batch": medians,
        "windows_by_batch": {b: [round(x, 2) for x in v] for b, v in per_batch.items()},
        "cpu_ms_per_input_by_batch": {
            b: round(statistics.median(v), 2) for b, v in cpu_per_input.items()
        },
        "best_batch": best,
        "limit_inputs_per_s": medians[best],
        "max_batch_tokens": pipeline.config.batching.max_batch_tokens,
    }


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("models_dir", type=Path)
    parser.add_argument("--kind", default="long", choices=["short", "long"])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--batches", default="1,2,4,8,16,32")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    print(json.dumps(measure(args.models_dir, args.kind, args.seconds, batches, args.rounds)))


if __name__ == "__main__":
    main()
