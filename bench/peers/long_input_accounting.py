"""Where the cores go while long inputs are served: the gap between served throughput and the
engine's own limit, taken apart.

    .outpost/bench-venvs/loadgen/bin/python bench/peers/long_input_accounting.py \
        [--pairs 3] [--duration 8]

Outpost's fp32 origin and infinity-emb (optimum) are started once and measured in alternation
at 8 and 32 clients of single long inputs. In each window (after the load generator's warm-up)
the machine's CPU time is split by thread and process: the server's main thread (Outpost: the
event loop, which parses HTTP, tokenizes and writes JSON), its other threads (the engine's:
onnxruntime's threads and, for Outpost, the worker that calls it), the load generator, and
the cores left idle. For Outpost the origin's metrics also give the batches (mean size, and the
share of the window a batch was running). The engine's in-process CPU cost per input at its
best batch (`engine_limit.py`) is measured before the windows. Results:
bench/results/long-input-accounting.json.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import run
import servers
from paired import head, options

from bench.lib import batches, usage

OUT = run.ROOT / "bench" / "results" / "long-input-accounting.json"
ORDER = ["outpost-fp32", "infinity-optimum"]
CLIENTS = (8, 32)


def window(
    base: str,
    launch: servers.Launch,
    server_pid: int,
    inputs: Path,
    clients: int,
    duration: float,
    model: str | None,
) -> dict:
    """One window of `clients` closed-loop clients of single long inputs, and where the cores
    went during its measured part."""
    argv = run.loadgen_argv(base, launch, inputs, 1, clients, duration)
    split = usage.CoreSplit(server_pid)
    split.before_load()
    gen = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    time.sleep(run.WARMUP_S)
    split.start(gen.pid)
    metrics0 = batches.counters(base, model) if model else None
    t0 = time.perf_counter()
    out, _ = gen.communicate(timeout=duration + 120)
    wall = time.perf_counter() - t0
    cores = split.cores()
    metrics1 = batches.counters(base, model) if model else None
    if gen.returncode != 0:
        raise RuntimeError("load generator failed")
    result = json.loads(out)
    served = result["sentences_per_s"]
    row = {
        "clients": clients,
        "inputs_per_s": served,
        "p99_ms": result["p99_ms"],
        "cores": cores,
        "engine_cpu_ms_per_input": round(
            cores["server other threads"] / max(served, 1e-9) * 1000, 2
        ),
    }
    if metrics0 is not None and metrics1 is not None:
        stats = batches.stats(metrics0, metrics1)
        running = (
            metrics1["inference_duration_seconds_sum"] - metrics0["inference_duration_seconds_sum"]
        )
        row["batches"] = {**stats, "running_share": round(running / wall, 3)}
    return row


def main() -> None:
    args = options(__doc__, OUT, pairs=3, duration=8.0)
    ctx: dict = {}
    servers.prepare_origin_models(ctx, run.STATE)
    limit = run.engine_limit(ctx["models_dir_v1"])
    specs = servers.by_name(run.ORIGIN_SETTINGS)
    inputs, texts = run.prepare_inputs(Path(tempfile.mkdtemp()))
    windows: dict[str, list[dict]] = {name: [] for name in ORDER}
    with ExitStack() as stack:
        up = {
            name: stack.enter_context(run.running(specs[name], ctx, "accounting")) for name in ORDER
        }
        for base, launch, _ in up.values():
            run.warm(base, launch, texts)
        for pair in range(args.pairs):
            for name in ORDER if pair % 2 == 0 else list(reversed(ORDER)):
                base, launch, rss = up[name]
                model = launch.model if name.startswith("outpost") else None
                for clients in CLIENTS:
                    row = window(
                        base, launch, rss.proc.pid, inputs["long"], clients, args.duration, model
                    )
                    windows[name].append(row)
                    print(name, json.dumps(row), flush=True)
    medians = {}
    for name, rows in windows.items():
        for clients in CLIENTS:
            mine = [r for r in rows if r["clients"] == clients]
            medians[f"{name} 1x{clients}"] = {
                "inputs_per_s": statistics.median(r["inputs_per_s"] for r in mine),
                "share_of_limit": round(
                    statistics.median(r["inputs_per_s"] for r in mine)
                    / limit["limit_inputs_per_s"],
                    3,
                ),
                "cores": {
                    k: round(statistics.median(r["cores"][k] for r in mine), 3)
                    for k in mine[0]["cores"]
                },
                "engine_cpu_ms_per_input": statistics.median(
                    r["engine_cpu_ms_per_input"] for r in mine
                ),
            }
    result = {
        **head(ORDER),
        "duration_s": args.duration,
        "engine_limit": limit,
        "medians": medians,
        "windows": windows,
    }
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(medians, indent=1))


if __name__ == "__main__":
    main()
