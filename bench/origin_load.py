"""Origin load benchmark (not a test): served throughput vs the engine's limit vs a naive server.

    .venv/bin/python bench/origin_load.py [--models-dir models] [--model minilm]
                                          [--clients 1,8,32,64] [--seconds 6]

In one run, on the same short single-sentence inputs:
  1. engine limit: in-process tokenize + ONNX Runtime + pooling at batch sizes 1..64 (best kept),
     and the p50 of one raw batch-1 call;
  2. the origin (`python -m origin`, its own process) driven over HTTP by a load generator in a
     separate process (so it does not share the server's GIL) at each client count;
  3. a naive FastAPI server (this file's `naive-server` mode, its own uvicorn process) that runs
     one ORT call per request, driven the same way.
Prints a table and writes bench/results/origin_load.json with requests/s, p50/p99 and the
ratios served/limit and served/naive. Targets (issue 2): at 32 clients served >= 0.8 x limit and
>= 2 x naive; at 1 client, served p50 <= 1.5 x raw batch-1 + 2 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import free_port  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "origin_load.json"
_WORD_TEXT = (
    "the app user phone order city weather train ticket coffee music photo friend message "
    "account payment delivery store price review search map route station morning evening "
    "weekend holiday family school office team project meeting report update battery screen "
    "camera video game score player match season hotel room flight airport bag restaurant"
)
WORDS = _WORD_TEXT.split()


def sentences(n: int = 512, seed: int = 2) -> list[str]:
    """Distinct short sentences (~8-14 tokens)."""
    rng = random.Random(seed)
    return [
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 11))) + f" {i}" for i in range(n)
    ]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


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
    out["batch1_p50_ms"] = round(percentile(lat, 0.5) * 1000, 3)
    return out


# ----------------------------------------------------------------------------- load generator
async def _post(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, body: bytes
) -> int:
    """One keep-alive HTTP/1.1 POST on an open connection; returns the status code."""
    writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
    raw = await reader.readuntil(b"\r\n\r\n")
    status = int(raw[9:12])
    length = 0
    for line in raw.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


async def _drive(url: str, model: str, clients: int, seconds: float, warmup: float) -> dict:
    """Closed loop: `clients` connections, each sends one request, waits, sends the next.

    A minimal raw-socket HTTP/1.1 client keeps the generator's own CPU use small (httpx costs
    more per request than the server's batching saves on 2 cores)."""
    host, port = url.removeprefix("http://").split(":")
    texts = sentences()
    head = (
        f"POST /v1/embeddings HTTP/1.1\r\nHost: {host}\r\n"
        "Content-Type: application/json\r\nContent-Length: "
    ).encode()
    lat: list[float] = []
    errors = 0
    t_measure = time.perf_counter() + warmup
    t_end = t_measure + seconds

    async def worker(n: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, int(port))
        i = n
        try:
            while True:
                start = time.perf_counter()
                if start >= t_end:
                    return
                body = json.dumps({"model": model, "input": texts[i % len(texts)]}).encode()
                status = await _post(reader, writer, head, body)
                end = time.perf_counter()
                i += clients
                if start >= t_measure:
                    if status == 200:
                        lat.append(end - start)
                    else:
                        errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker(n) for n in range(clients)))
    return {
        "clients": clients,
        "requests": len(lat),
        "errors": errors,
        "rps": round(len(lat) / seconds, 1),
        "p50_ms": round(percentile(lat, 0.5) * 1000, 2),
        "p99_ms": round(percentile(lat, 0.99) * 1000, 2),
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
def start(argv: list[str], url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    import httpx

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{argv} exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url + "/v2/health/live", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"{argv} did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


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

    def measure(label: str, argv: list[str], levels: list[int]) -> list[dict[str, Any]]:
        """Start one server (argv gets its port appended), drive it at each level, stop it."""
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = start([*argv, str(port)], url, logs / f"origin_load-{label}.log")
        rows = []
        try:
            for c in levels:
                rows.append(run_loadgen(url, args.model, c, args.seconds))
                print(f"{label:<6}", rows[-1], flush=True)
        finally:
            stop(proc)
        return rows

    origin_argv = [sys.executable, "-m", "origin", "--models-dir", str(args.models_dir)]
    origin_argv += ["--no-watch", "--log-level", "warning", "--port"]
    naive_argv = [sys.executable, __file__, "naive-server", str(model_dir), str(version)]
    results: dict[str, Any] = {
        "served": measure("served", origin_argv, levels),
        "naive": measure("naive", naive_argv, naive_levels),
    }

    served = {r["clients"]: r for r in results["served"]}
    naive = {r["clients"]: r for r in results["naive"]}
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
        **results,
        "ratios": ratios,
        "targets": targets,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")

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
