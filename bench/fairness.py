"""Fair scheduling at one origin (a benchmark, not a test): one subject floods, another sends
small requests.

    ./dev bench fairness [--models-dir models] [--model minilm] [--seconds 30]
        [--flood-clients 2] [--flood-inputs 128] [--out bench/results/fairness.json]

In one run:
  1. engine: in-process, the model's time per padded token at the default threads, for short
     (~13 tokens) and long (~125 tokens) inputs at batch sizes 1 to 32: what `max_batch_ms` is
     chosen from (the share of the best throughput a batch within it keeps);
  2. one origin (`bench/lib/subject_origin.py`: each request's subject from a header, as the
     origin's caller check takes it from the edge's proof), its model.yaml as it is, driven by
     this process over keep-alive connections (bench/lib/rawhttp.py), in three phases:
     - idle: the victim alone: one short input per request, one request at a time, with a
       random pause (0 to 2 x --victim-pause-ms) between requests;
     - flood: the flooder (`sub:flood`) sends --flood-inputs long inputs per request from
       --flood-clients connections in a closed loop, so its queue never empties (its full
       rate), while the victim (`sub:victim`) sends as when idle; the flood starts
       --warmup seconds before the victim;
     - one queue: the same, both without a subject (one anonymous subject: the single queue
       the origin had before fair scheduling), for comparison.
Reports the victim's p50/p99 in each phase, the bound (idle p99 + the model's max_batch_ms)
and whether the flood's p99 is within it, the flooder's inputs/s, and the origin's batches in
each phase (from its metrics: count, mean size, mean ms, share longer than max_batch_ms).
Writes bench/results/fairness.json (or --out). The target (issue 24): victim p99 under the
flood <= idle p99 + max_batch_ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.lib import (  # noqa: E402
    batches,
    cli,
    components,
    procs,
    rawhttp,
    results,
    subject_origin,
)
from bench.lib.stats import percentile  # noqa: E402
from bench.lib.texts import make_texts  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "fairness.json"
FLOODER, VICTIM = "sub:flood", "sub:victim"


def model_settings(models_dir: Path, model: str) -> tuple[int, Any]:
    """The served version and its merged config (model.yaml, version overrides)."""
    from origin.repository.config import load_model_config
    from origin.repository.loader import version_dirs

    top = load_model_config(models_dir / model)
    versions = version_dirs(models_dir / model)
    version = top.pinned_version if top.version_policy == "pinned" else max(versions)
    config = load_model_config(models_dir / model, overrides=versions[version] / "model.yaml")
    return version, config


# ----------------------------------------------------------------------------- engine
def engine_table(model_dir: Path, version: int, rounds: int) -> dict[str, list[dict[str, Any]]]:
    """Median batch time, time per padded token and inputs/s by batch size, short and long
    inputs, measured in rotating order over `rounds` rounds."""
    from origin.repository.loader import load_version

    pipe: Any = load_version(model_dir.name, model_dir, version).pipeline
    cells = {}
    for kind in ("short", "long"):
        batch_items = pipe.tokenize(make_texts(kind, 32, seed=5))
        for size in (1, 2, 4, 8, 16, 32):
            cells[(kind, size)] = batch_items[:size]
    times: dict[tuple[str, int], list[float]] = {key: [] for key in cells}
    for _ in range(rounds):
        for key, batch in cells.items():
            start = time.perf_counter()
            pipe.run_batch(batch)
            times[key].append(time.perf_counter() - start)
    table: dict[str, list[dict[str, Any]]] = {"short": [], "long": []}
    for (kind, size), batch in cells.items():
        seconds = statistics.median(times[(kind, size)])
        padded = max(it.cost for it in batch) * size
        table[kind].append(
            {
                "batch": size,
                "padded_tokens": padded,
                "batch_ms": round(seconds * 1000, 2),
                "us_per_token": round(seconds / padded * 1e6, 1),
                "inputs_per_s": round(size / seconds, 1),
            }
        )
    return table


def within(table: list[dict[str, Any]], max_batch_ms: float) -> dict[str, Any]:
    """The largest batch whose time fits `max_batch_ms`, and its share of the best inputs/s."""
    best = max(row["inputs_per_s"] for row in table)
    fits = [row for row in table if row["batch_ms"] <= max_batch_ms] or table[:1]
    row = max(fits, key=lambda r: r["batch"])
    return {"batch": row["batch"], "share_of_best_throughput": round(row["inputs_per_s"] / best, 3)}


# ----------------------------------------------------------------------------- load
def post(port: int, body: dict[str, Any], subject: str | None) -> bytes:
    headers = {subject_origin.HEADER: subject} if subject else None
    return rawhttp.request_bytes(port, "/v1/embeddings", json.dumps(body).encode(), headers)


async def victim(
    port: int, model: str, subject: str | None, seconds: float, pause_ms: float
) -> dict[str, Any]:
    """One short input per request, one at a time, random pauses; latencies of the 200s."""
    texts = make_texts("short", 512, seed=11)
    rng = random.Random(3)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    latencies: list[float] = []
    errors = 0
    end = time.perf_counter() + seconds
    try:
        i = 0
        while time.perf_counter() < end:
            raw = post(port, {"model": model, "input": texts[i % len(texts)]}, subject)
            i += 1
            start = time.perf_counter()
            status = await rawhttp.exchange(reader, writer, raw)
            if status == 200:
                latencies.append(time.perf_counter() - start)
            else:
                errors += 1
            await asyncio.sleep(rng.uniform(0, 2 * pause_ms / 1000))
    finally:
        writer.close()
    return {
        "requests": len(latencies),
        "errors": errors,
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
        "max_ms": round(max(latencies, default=float("nan")) * 1000, 2),
    }


async def flooder(
    port: int, model: str, subject: str | None, inputs: int, stop: asyncio.Event, out: dict
) -> None:
    """Requests of `inputs` long inputs, back to back, until `stop`; counts the refusals."""
    texts = make_texts("long", 512, seed=13)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        i = 0
        while not stop.is_set():
            batch = [texts[(i + k) % len(texts)] for k in range(inputs)]
            i += inputs
            body = {"model": model, "input": batch, "encoding_format": "base64"}
            status = await rawhttp.exchange(reader, writer, post(port, body, subject))
            if status != 200:
                out[str(status)] = out.get(str(status), 0) + 1
                await asyncio.sleep(0.05)
    finally:
        writer.close()


async def phase(
    url: str,
    model: str,
    args: argparse.Namespace,
    subjects: tuple[str | None, str | None] | None,
    max_batch_ms: float,
) -> dict[str, Any]:
    """The victim for --seconds, behind a flood (`subjects`: flooder's and victim's) or alone
    (None); the flooder's throughput over the victim's window and the origin's batches."""
    port = int(url.rsplit(":", 1)[1])
    flood_subject, victim_subject = subjects if subjects else (None, VICTIM)
    stop = asyncio.Event()
    refused: dict[str, int] = {}
    floods = []
    if subjects is not None:
        floods = [
            asyncio.create_task(
                flooder(port, model, flood_subject, args.flood_inputs, stop, refused)
            )
            for _ in range(args.flood_clients)
        ]
        await asyncio.sleep(args.warmup)
    before = batches.counters(url, model)
    start = time.perf_counter()
    result = await victim(port, model, victim_subject, args.seconds, args.victim_pause_ms)
    window = time.perf_counter() - start
    after = batches.counters(url, model)
    # The flood's inputs run in the window: all inputs the model ran, less the victim's.
    inputs = after["batch_size_sum"] - before["batch_size_sum"] - result["requests"]
    stop.set()
    await asyncio.gather(*floods)
    out: dict[str, Any] = {"victim": result, "batches": batches.stats(before, after, max_batch_ms)}
    if subjects is not None:
        out["flooder"] = {
            "clients": args.flood_clients,
            "inputs_per_request": args.flood_inputs,
            "inputs_per_s": round(inputs / window, 1),
            "refused": refused,
        }
    return out


# ----------------------------------------------------------------------------- main
def main() -> None:
    # --seconds: the victim's time per phase; --warmup: the flood before the victim.
    parser = cli.model_parser(__doc__.split("\n\n")[0], RESULTS, 30.0, ROOT)
    parser.add_argument("--flood-clients", type=int, default=2)
    parser.add_argument("--flood-inputs", type=int, default=128)
    parser.add_argument("--victim-pause-ms", type=float, default=25.0)
    parser.add_argument("--engine-rounds", type=int, default=15)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.models_dir == ROOT / "models":
        components.ensure_demo_models(args.models_dir)
    version, config = model_settings(args.models_dir, args.model)
    batching = config.batching
    max_batch_ms = batching.max_batch_ms

    print(
        f"engine: {args.model} v{version} in-process, {args.engine_rounds} rounds ...", flush=True
    )
    engine = engine_table(args.models_dir / args.model, version, args.engine_rounds)
    for kind, rows in engine.items():
        for row in rows:
            print(f"  {kind:5} {row}", flush=True)
    engine_within = {kind: within(rows, max_batch_ms) for kind, rows in engine.items()}

    logs = ROOT / ".outpost" / "bench-logs"
    port = procs.free_port()
    settings = {"OUTPOST_ORIGIN_LOG_LEVEL": "warning", "OUTPOST_ORIGIN_ACCESS_LOG": "false"}
    server = subject_origin.start(port, args.models_dir, logs / "fairness-origin.log", **settings)
    phases: dict[str, Any] = {}
    with procs.stopping(server):
        for name, subjects in (
            ("idle", None),
            ("flood", (FLOODER, VICTIM)),
            ("one_queue", (None, None)),
        ):
            print(f"{name}: victim for {args.seconds} s ...", flush=True)
            phases[name] = asyncio.run(phase(server.url, args.model, args, subjects, max_batch_ms))
            print(f"  {json.dumps(phases[name])}", flush=True)

    idle_p99 = phases["idle"]["victim"]["p99_ms"]
    flood_p99 = phases["flood"]["victim"]["p99_ms"]
    bound = round(idle_p99 + max_batch_ms, 2)
    report = {
        **results.stamp("fairness"),
        "model": args.model,
        "version": version,
        "batching": batching.model_dump(),
        "seconds_per_phase": args.seconds,
        "victim_pause_ms": args.victim_pause_ms,
        "engine": engine,
        "engine_within_max_batch_ms": engine_within,
        "phases": phases,
        "bound_ms": bound,
        "ratios": {
            "flood_p99_over_bound": round(flood_p99 / bound, 3),
            "flood_p99_over_idle_p99": round(flood_p99 / idle_p99, 3),
            "one_queue_p99_over_flood_p99": round(
                phases["one_queue"]["victim"]["p99_ms"] / flood_p99, 1
            ),
            "flooder_inputs_per_s_over_one_queue": round(
                phases["flood"]["flooder"]["inputs_per_s"]
                / max(phases["one_queue"]["flooder"]["inputs_per_s"], 1e-9),
                3,
            ),
        },
        "targets": {
            "victim_p99_within_idle_p99_plus_max_batch_ms": flood_p99 <= bound,
            "victim_never_refused": phases["flood"]["victim"]["errors"] == 0,
        },
    }
    if str(args.out) != "-":
        results.write_json(args.out, report)
        print(f"wrote {args.out}")
    print(
        f"victim p99: idle {idle_p99} ms, under the flood {flood_p99} ms (bound {bound} ms = "
        f"idle p99 + max_batch_ms {max_batch_ms:g}), one queue "
        f"{phases['one_queue']['victim']['p99_ms']} ms"
    )
    print(json.dumps(report["targets"]))


if __name__ == "__main__":
    main()
