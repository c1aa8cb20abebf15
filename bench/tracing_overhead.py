"""Tracing overhead at the origin (a benchmark, not a test).

    .venv/bin/python bench/tracing_overhead.py [--models-dir models] [--model minilm]
        [--clients 32] [--seconds 20] [--rounds 5] [--sampling RATIO]

Three origin processes serve the same model: tracing off, tracing on at the default sampling
(`OUTPOST_TRACING_SAMPLE_RATIO` unset, i.e. `TracingSettings().sample_ratio`), and tracing on at
sampling 1.0. Each traced origin exports over OTLP/HTTP to its own sink process (reads and
acknowledges exports, counts them; a real collector would run on another machine). A load
generator in its own process drives one origin at a time with `--clients` closed-loop clients
sending short sentences without `traceparent` (the origin makes the sampling decision). The
order rotates every round, so drift on a shared machine spreads over all three. Reports each
round's throughput, mean batch size and time (from the origin's metrics: how the closed-loop
clients fell into step with the batches), where the cores went (`bench.lib.usage.CoreSplit`:
the origin's event loop and its other threads, the load generator, idle) with the origin's CPU
per request by thread, and the ratios to tracing off (median over rounds), and writes
bench/results/tracing.json. The issue's target: default sampling >= 0.97 x off at 32
clients.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "tracing.json"
WORDS = [
    *("the", "app", "user", "phone", "order", "city", "weather", "train", "ticket", "coffee"),
    *("music", "photo", "friend", "message", "account", "payment", "delivery", "store"),
    *("price", "review", "search", "map", "route", "station", "morning", "evening"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sentences(n: int = 512, seed: int = 3) -> list[str]:
    rng = random.Random(seed)
    return [
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 11))) + f" {i}" for i in range(n)
    ]


# ----------------------------------------------------------------------------- OTLP sink
def sink_main(port: int) -> None:
    """Acknowledge OTLP/HTTP exports without decoding them; GET /stats counts them."""
    stats = {"exports": 0, "bytes": 0}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            stats["exports"] += 1
            stats["bytes"] += len(body)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            out = json.dumps(stats).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


# ----------------------------------------------------------------------------- load generator
async def _drive(port: int, model: str, clients: int, seconds: float, warmup: float) -> dict:
    """Closed loop over raw keep-alive HTTP/1.1 (a light client: 2 shared cores)."""
    texts = sentences()
    head = (
        b"POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: "
    )
    latencies: list[float] = []
    errors = 0
    t_measure = time.perf_counter() + warmup
    t_end = t_measure + seconds

    async def client(n: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = n
        try:
            while (start := time.perf_counter()) < t_end:
                body = json.dumps({"model": model, "input": texts[i % len(texts)]}).encode()
                writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
                raw = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line[15:])
                    for line in raw.split(b"\r\n")
                    if line[:15].lower() == b"content-length:"
                )
                await reader.readexactly(length)
                i += clients
                if start >= t_measure:
                    if raw[9:12] == b"200":
                        latencies.append(time.perf_counter() - start)
                    else:
                        errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(client(n) for n in range(clients)))
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": round(len(latencies) / seconds, 1),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2) if latencies else None,
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2) if latencies else None,
    }


def loadgen_main(port: int, model: str, clients: int, seconds: float, warmup: float) -> None:
    print(json.dumps(asyncio.run(_drive(port, model, clients, seconds, warmup))))


def run_loadgen(
    port: int, model: str, clients: int, seconds: float, warmup: float, server_pid: int
) -> dict:
    """One window of load, with where the cores went in its measured part (`usage.CoreSplit`)
    and the origin's CPU per request by thread."""
    from bench.lib import usage

    split = usage.CoreSplit(server_pid)
    split.before_load()
    argv = [sys.executable, __file__, "loadgen", *map(str, (port, model, clients, seconds, warmup))]
    gen = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    time.sleep(warmup)
    split.start(gen.pid)
    out, _ = gen.communicate(timeout=seconds + 120)
    if gen.returncode != 0:
        raise SystemExit(f"load generator exited with {gen.returncode}")
    result = json.loads(out.strip().splitlines()[-1])
    cores = split.cores()
    rps = max(result["rps"], 1e-9)
    return result | {
        "cores": cores,
        "origin_cpu_us_per_request": {
            "main thread": round(cores["server main thread"] / rps * 1e6, 1),
            "other threads": round(cores["server other threads"] / rps * 1e6, 1),
        },
    }


# ----------------------------------------------------------------------------- processes
def _wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: process exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} not ready after {timeout}s")


def start_origin(
    models_dir: Path, port: int, tracing: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_TRACING_")},
        "HF_HUB_OFFLINE": "1",
        **tracing,
    }
    with log.open("wb") as out:
        return subprocess.Popen(
            [
                *(sys.executable, "-m", "origin", "--port", str(port)),
                *("--models-dir", str(models_dir), "--no-watch"),
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from bench.lib import batches, cli

    parser = cli.model_parser(__doc__.split("\n\n")[0], RESULTS, 20.0, ROOT)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--sampling",
        type=float,
        default=None,
        help="measure this sample ratio in the default's place (an operator's choice)",
    )
    args = parser.parse_args()
    if args.rounds < 1 or args.clients < 1:
        parser.error("--rounds and --clients must be at least 1")
    if args.sampling is not None and not 0 <= args.sampling <= 1:
        parser.error("--sampling is a ratio between 0 and 1")
    from origin.tracing import TracingSettings

    default_ratio = TracingSettings.model_fields["sample_ratio"].default
    if args.sampling is not None:
        default_ratio = args.sampling
    from bench.lib.components import ensure_demo_models

    ensure_demo_models(args.models_dir)
    logs = ROOT / ".outpost" / "bench-tracing"
    logs.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    cells: dict[str, dict[str, Any]] = {}
    try:
        chosen = "default" if args.sampling is None else str(args.sampling)
        for name, ratio in (("off", None), ("default", chosen), ("full", "1.0")):
            port = free_port()
            tracing: dict[str, str] = {"OUTPOST_TRACING_ENABLED": "false"}
            sink = None
            if ratio is not None:
                sink = free_port()
                procs.append(
                    subprocess.Popen([sys.executable, __file__, "sink", str(sink)], cwd=ROOT)
                )
                tracing = {
                    "OUTPOST_TRACING_ENABLED": "true",
                    "OUTPOST_TRACING_ENDPOINT": f"http://127.0.0.1:{sink}/v1/traces",
                }
                if ratio != "default":
                    tracing["OUTPOST_TRACING_SAMPLE_RATIO"] = ratio
            proc = start_origin(args.models_dir, port, tracing, logs / f"origin-{name}.log")
            procs.append(proc)
            cells[name] = {"port": port, "sink": sink, "proc": proc, "rounds": []}
        for cell in cells.values():
            _wait_http(f"http://127.0.0.1:{cell['port']}/v2/health/ready", 300, cell["proc"])
        order = list(cells)
        for r in range(args.rounds):
            for name in order[r % 3 :] + order[: r % 3]:
                url = f"http://127.0.0.1:{cells[name]['port']}"
                before = batches.counters(url, args.model)
                result = run_loadgen(
                    cells[name]["port"],
                    args.model,
                    args.clients,
                    args.seconds,
                    args.warmup,
                    cells[name]["proc"].pid,
                )
                ran = batches.stats(before, batches.counters(url, args.model))
                result |= {"mean_batch": ran.get("mean_size"), "mean_batch_ms": ran.get("mean_ms")}
                cells[name]["rounds"].append(result)
                print(f"round {r + 1} {name:8} {result['rps']:8.1f} req/s  {result}", flush=True)
        import httpx

        exported = {
            name: httpx.get(f"http://127.0.0.1:{c['sink']}/stats", timeout=5).json()
            for name, c in cells.items()
            if c["sink"]
        }
    finally:
        for proc in procs:
            stop(proc)

    def ratio(name: str) -> dict[str, Any]:
        per_round = [
            a["rps"] / b["rps"]
            for a, b in zip(cells[name]["rounds"], cells["off"]["rounds"], strict=True)
        ]
        return {"median": round(statistics.median(per_round), 3), "rounds": per_round}

    summary = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "model": args.model,
        "clients": args.clients,
        "seconds_per_cell": args.seconds,
        "rounds": args.rounds,
        "default_sample_ratio": default_ratio,
        "sampling_chosen": args.sampling is not None,  # --sampling: not the default's ratio
        "rps_median": {
            n: statistics.median(x["rps"] for x in c["rounds"]) for n, c in cells.items()
        },
        "mean_batch_median": {
            n: statistics.median(x["mean_batch"] or 0 for x in c["rounds"])
            for n, c in cells.items()
        },
        "cores_median": {
            n: {
                part: statistics.median(x["cores"][part] for x in c["rounds"])
                for part in c["rounds"][0]["cores"]
            }
            for n, c in cells.items()
        },
        "origin_cpu_us_per_request_median": {
            n: {
                part: statistics.median(x["origin_cpu_us_per_request"][part] for x in c["rounds"])
                for part in ("main thread", "other threads")
            }
            for n, c in cells.items()
        },
        "ratio_default_vs_off": ratio("default"),
        "ratio_full_vs_off": ratio("full"),
        "target_default_vs_off": 0.97,
        "exports": exported,
        "cells": {n: c["rounds"] for n, c in cells.items()},
    }
    print(json.dumps({k: summary[k] for k in summary if k != "cells"}, indent=2))
    if str(args.out) != "-":
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "sink":
        sink_main(int(sys.argv[2]))
    elif len(sys.argv) > 1 and sys.argv[1] == "loadgen":
        port, model, clients, seconds, warmup = sys.argv[2:7]
        loadgen_main(int(port), model, int(clients), float(seconds), float(warmup))
    else:
        main()
