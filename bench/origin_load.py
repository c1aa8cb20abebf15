"""Origin load benchmark (not a test): served throughput vs the engine's limit vs a naive server.

    ./dev bench origin [--models-dir models] [--model minilm] [--clients 1,8,32,64]
                       [--seconds 6] [--out bench/results/origin_load.json]

In one run, on the same short single-sentence inputs:
  1. engine limit: in-process tokenize + ONNX Runtime + pooling at batch sizes 1..64 (best kept),
     and the p50 of one raw batch-1 call;
  2. the origin (`python -m origin`, its own process) driven over HTTP by a load generator in a
     separate process (so it does not share the server's GIL) at each client count: the raw
     keep-alive client's closed loop (bench/lib/rawhttp.py), 1 s of warm-up not counted;
  3. a naive FastAPI server (this file's `naive-server` mode, its own uvicorn process) that runs
     one ORT call per request, driven the same way.
Prints a table and writes bench/results/origin_load.json (or --out) with requests/s, p50/p99
(bench/lib/stats.py's convention) and the ratios served/limit and served/naive. Targets
(issue 2): at 32 clients served >= 0.8 x limit and >= 2 x naive; at 1 client, served p50 <=
1.5 x raw batch-1 p50 + 2 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.lib import components, procs, rawhttp, results  # noqa: E402
from bench.lib.stats import percentile  # noqa: E402
from bench.lib.texts import make_texts  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "origin_load.json"


def sentences(n: int = 512, seed: int = 2) -> list[str]:
    """Distinct short sentences (~10-15 tokens)."""
    return make_texts("short", n, seed)


# ----------------------------------------------------------------------------- engine limit
def engine_limit(model_dir: Path, version: int, texts: list[str], seconds: float) -> dict:
    from origin.repository.loader import load_version

    pipe: Any = load_version(model_dir.name, model_dir, version).pipeline
    out: dict[str, Any] = {"by_batch_size": {}}
    for bs in (1, 8, 16, 32, 64):
        done, i, start = 0, 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            chunk = [texts[(i + k) % len(texts)] for k in range(bs)]
            pipe.run_batch(pipe.tokenize(chunk))
            done += bs
            i += bs
        out["by_batch_size"][bs] = round(done / (time.perf_counter() - start), 1)
    best = max(out["by_batch_size"], key=out["by_batch_size"].get)
    out["best_batch_size"] = best
    out["limit_rps"] = out["by_batch_size"][best]
    lat = []
    for k in range(200):
        t = time.perf_counter()
        pipe.run_batch(pipe.tokenize([texts[k % len(texts)]]))
        lat.append(time.perf_counter() - t)
    out["batch1_p50_ms"] = round(percentile(lat, 50) * 1000, 3)
    return out


# ----------------------------------------------------------------------------- load generator
async def _drive(url: str, model: str, clients: int, seconds: float, warmup: float) -> dict:
    """Closed loop: `clients` connections, each sends one request, waits, sends the next.

    The raw keep-alive client keeps the generator's own CPU use small (httpx costs more per
    request than the server's batching saves on 2 cores)."""
    port = int(url.rsplit(":", 1)[1])
    texts = sentences()

    def request(i: int) -> bytes:
        body = json.dumps({"model": model, "input": texts[i % len(texts)]}).encode()
        return rawhttp.request_bytes(port, "/v1/embeddings", body)

    load = await rawhttp.closed_loop(port, request, clients, seconds, warmup)
    lat = load.latencies
    return {
        "clients": clients,
        "requests": load.ok,
        "errors": load.errors,
        "rps": round(load.ok / seconds, 1),
        "p50_ms": round(percentile(lat, 50) * 1000, 2),
        "p99_ms": round(percentile(lat, 99) * 1000, 2),
        "mean_ms": round(statistics.fmean(lat) * 1000, 2) if lat else None,
    }


def loadgen_main(argv: list[str]) -> None:
    url, model, clients, seconds, warmup = argv
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(_drive(url, model, int(clients), float(seconds), float(warmup)))
    print(json.dumps(result))


def run_loadgen(url: str, model: str, clients: int, seconds: float) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "loadgen", url, model, str(clients), str(seconds), "1.0"],
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- naive server
class NaiveRequest(BaseModel):
    model: str
    input: str | list[str]


def naive_app(model_dir: Path, version: int) -> Any:
    """One tokenizer call + one ORT call per request, in FastAPI's threadpool. No batching."""
    import numpy as np
    import onnxruntime as ort
    from fastapi import FastAPI
    from transformers import AutoTokenizer

    vdir = model_dir / str(version)
    tok = AutoTokenizer.from_pretrained(str(vdir), local_files_only=True)
    so = ort.SessionOptions()
    so.intra_op_num_threads = os.cpu_count() or 1
    sess = ort.InferenceSession(str(vdir / "model.onnx"), so, providers=["CPUExecutionProvider"])
    names = {i.name for i in sess.get_inputs()}
    app = FastAPI()

    @app.post("/v1/embeddings")
    def embed(req: NaiveRequest) -> dict:
        texts = [req.input] if isinstance(req.input, str) else req.input
        enc = tok(texts, padding=True, truncation=True, max_length=256, return_tensors="np")
        feeds = {k: v.astype(np.int64) for k, v in enc.items() if k in names}
        (hidden,) = sess.run(["last_hidden_state"], feeds)
        mask = feeds["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(1) / mask.sum(1)
        pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
        return {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": v.tolist()}
                for i, v in enumerate(pooled)
            ],
            "model": req.model,
        }

    @app.get("/v2/health/live")
    def live() -> dict:
        return {"live": True}

    return app


def naive_main(argv: list[str]) -> None:
    import uvicorn

    model_dir, version, port = Path(argv[0]), int(argv[1]), int(argv[2])
    uvicorn.run(naive_app(model_dir, version), host="127.0.0.1", port=port, log_level="warning")


# ----------------------------------------------------------------------------- orchestration
def served_version(models_dir: Path, model: str) -> int:
    import yaml

    cfg = yaml.safe_load((models_dir / model / "model.yaml").read_text())
    if cfg.get("version_policy") == "pinned":
        return int(cfg["pinned_version"])
    return max(int(p.name) for p in (models_dir / model).iterdir() if p.name.isdigit())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--clients", default="1,8,32,64")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--naive-clients", default=None, help="default: same as --clients")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    levels = [int(c) for c in args.clients.split(",")]
    naive_levels = [int(c) for c in (args.naive_clients or args.clients).split(",")]
    model_dir = args.models_dir / args.model
    version = served_version(args.models_dir, args.model)
    logs = ROOT / ".outpost" / "bench-logs"
    logs.mkdir(parents=True, exist_ok=True)

    print(f"engine limit: {args.model} v{version} in-process ...", flush=True)
    limit = engine_limit(model_dir, version, sentences(), min(args.seconds, 4.0))
    print(json.dumps(limit), flush=True)

    def measure(label: str, argv: list[str], port: int, levels: list[int]) -> list[dict[str, Any]]:
        """Start one server on `port`, drive it at each level, stop it."""
        log = logs / f"origin_load-{label}.log"
        rows = []
        server = procs.start_server(argv, port, "/v2/health/live", log, env=env)
        with procs.stopping(server):
            for c in levels:
                rows.append(run_loadgen(server.url, args.model, c, args.seconds))
                print(f"{label:<6}", rows[-1], flush=True)
        return rows

    # OUTPOST_ORIGIN_* settings of this environment apply to the origin under test.
    settings = {k: v for k, v in os.environ.items() if k.startswith("OUTPOST_ORIGIN_")}
    env = procs.clean_env({**settings, "TOKENIZERS_PARALLELISM": "false"})
    port, naive_port = procs.free_port(), procs.free_port()
    origin_argv = components.origin_argv(port, args.models_dir)
    origin_argv += ["--no-watch", "--log-level", "warning"]
    naive_argv = [sys.executable, __file__, "naive-server", str(model_dir), str(version)]
    runs: dict[str, Any] = {
        "served": measure("served", origin_argv, port, levels),
        "naive": measure("naive", [*naive_argv, str(naive_port)], naive_port, naive_levels),
    }

    served = {r["clients"]: r for r in runs["served"]}
    naive = {r["clients"]: r for r in runs["naive"]}
    ratios: dict[str, Any] = {}
    for c, r in served.items():
        row: dict[str, Any] = {"served_over_limit": round(r["rps"] / limit["limit_rps"], 3)}
        if c in naive and naive[c]["rps"]:
            row["served_over_naive"] = round(r["rps"] / naive[c]["rps"], 3)
        ratios[str(c)] = row
    targets: dict[str, Any] = {}
    if 32 in served:
        targets["32_clients_served_over_limit>=0.8"] = ratios["32"]["served_over_limit"] >= 0.8
        if "served_over_naive" in ratios["32"]:
            targets["32_clients_served_over_naive>=2"] = ratios["32"]["served_over_naive"] >= 2
    if 1 in served:
        bound = 1.5 * limit["batch1_p50_ms"] + 2
        targets["1_client_p50_ms"] = served[1]["p50_ms"]
        targets["1_client_p50_bound_ms"] = round(bound, 2)
        targets["1_client_p50_within_bound"] = served[1]["p50_ms"] <= bound
    report = {
        "model": args.model,
        "version": version,
        "seconds_per_level": args.seconds,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
        },
        "engine": limit,
        **runs,
        "ratios": ratios,
        "targets": targets,
        "when": results.now_utc(),
    }
    results.write_json(args.out, report)

    print(
        f"\nengine limit {limit['limit_rps']} req/s at batch {limit['best_batch_size']}; "
        f"raw batch-1 p50 {limit['batch1_p50_ms']} ms"
    )
    print(
        f"{'clients':>8} {'served r/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'naive r/s':>10} "
        f"{'/limit':>7} {'/naive':>7}"
    )
    for c in levels:
        s, n = served[c], naive.get(c)
        print(
            f"{c:>8} {s['rps']:>11} {s['p50_ms']:>8} {s['p99_ms']:>8} "
            f"{(n['rps'] if n else '-'):>10} {ratios[str(c)]['served_over_limit']:>7} "
            f"{ratios[str(c)].get('served_over_naive', '-'):>7}"
        )
    print(json.dumps(targets))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "loadgen":
        loadgen_main(sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] == "naive-server":
        naive_main(sys.argv[2:])
    else:
        main()
