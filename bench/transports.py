"""OIP transports benchmark (not a test): gRPC vs HTTP JSON vs HTTP binary on one origin.

    .venv/bin/python bench/transports.py [--models-dir models] [--clients 1,32]
                                         [--seconds 5] [--rounds 3]

One origin process (`python -m origin`, HTTP and gRPC ports) serves the demo models; this
process drives it with closed-loop clients (each sends a request, waits for the answer, sends
the next) for the iris tensor model (one row, FP32 [1, 4]) and MiniLM (one short sentence,
BYTES [1]), through each transport in turn, interleaved over rounds so drift on a shared machine
hits all three alike. Request bodies are encoded once up front, so the figures are the origin's
cost per transport, not a client library's. Writes bench/results/transports.json: requests/s and
p50/p99 per cell (median over rounds), and the ratios binary/JSON and gRPC/JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from origin.grpc import protocol  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "transports.json"
TRANSPORTS = ("http_json", "http_binary", "grpc")
IRIS_ROW = [5.9, 3.0, 4.2, 1.5]
SENTENCE = "the weather in the city is sunny this morning"
MODELS = {"iris": ("float_input", "FP32", [1, 4]), "minilm": ("text", "BYTES", [1])}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


# ----------------------------------------------------------------------------- request bodies
def _raw_input(model: str) -> bytes:
    if model == "iris":
        return np.array(IRIS_ROW, "<f4").tobytes()
    data = SENTENCE.encode()
    return len(data).to_bytes(4, "little") + data


def http_body(model: str, binary: bool) -> tuple[bytes, dict[str, str]]:
    name, datatype, shape = MODELS[model]
    tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": shape}
    if not binary:
        tensor["data"] = IRIS_ROW if model == "iris" else [SENTENCE]
        return json.dumps({"inputs": [tensor]}).encode(), {"Content-Type": "application/json"}
    raw = _raw_input(model)
    tensor["parameters"] = {"binary_data_size": len(raw)}
    header = json.dumps({"inputs": [tensor], "parameters": {"binary_data_output": True}}).encode()
    return header + raw, {"Inference-Header-Content-Length": str(len(header))}


def grpc_body(model: str) -> bytes:
    name, datatype, shape = MODELS[model]
    request = protocol.ModelInferRequest(model_name=model)
    request.inputs.add(name=name, datatype=datatype, shape=shape)
    request.raw_input_contents.append(_raw_input(model))
    return request.SerializeToString()


# ----------------------------------------------------------------------------- load loops
async def _http_worker(
    port: int,
    path: str,
    body: bytes,
    headers: dict[str, str],
    until: float,
    latencies: list[float],
    errors: list[int],
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        + "\r\n"
    ).encode()
    try:
        while time.perf_counter() < until:
            start = time.perf_counter()
            writer.write(head + body)
            status_and_headers = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in status_and_headers.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            if not status_and_headers.startswith(b"HTTP/1.1 200"):
                errors.append(1)
            latencies.append(time.perf_counter() - start)
    finally:
        writer.close()


async def _grpc_worker(
    call: Any, body: bytes, until: float, latencies: list[float], errors: list[int]
) -> None:
    while time.perf_counter() < until:
        start = time.perf_counter()
        try:
            await call(body)
        except grpc.aio.AioRpcError:
            errors.append(1)
        latencies.append(time.perf_counter() - start)


async def drive(
    transport: str, model: str, clients: int, seconds: float, ports: dict[str, int]
) -> dict[str, float]:
    """`clients` closed loops for `seconds` (after a short warm-up): req/s, p50, p99, errors."""
    latencies: list[float] = []
    errors: list[int] = []
    channel = None
    try:
        if transport == "grpc":
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{ports['grpc']}")
            call = channel.unary_unary(f"/{protocol.SERVICE_NAME}/ModelInfer")
            body = grpc_body(model)

            def workers(until: float, lat: list[float]) -> list[Any]:
                return [_grpc_worker(call, body, until, lat, errors) for _ in range(clients)]
        else:
            http, headers = http_body(model, binary=transport == "http_binary")
            path = f"/v2/models/{model}/infer"

            def workers(until: float, lat: list[float]) -> list[Any]:
                return [
                    _http_worker(ports["http"], path, http, headers, until, lat, errors)
                    for _ in range(clients)
                ]

        await asyncio.gather(*workers(time.perf_counter() + 0.5, []))  # warm-up
        errors.clear()
        start = time.perf_counter()
        await asyncio.gather(*workers(start + seconds, latencies))
        elapsed = time.perf_counter() - start
    finally:
        if channel is not None:
            await channel.close()
    return {
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.5) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "errors": len(errors),
    }


# ----------------------------------------------------------------------------- the origin
def start_origin(models_dir: Path) -> tuple[subprocess.Popen[bytes], dict[str, int]]:
    ports = {"http": free_port(), "grpc": free_port()}
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OUTPOST_ORIGIN_ACCESS_LOG": "false"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "origin",
            "--port",
            str(ports["http"]),
            "--grpc-port",
            str(ports["grpc"]),
            "--models-dir",
            str(models_dir),
            "--no-watch",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import urllib.request

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(
                f"the origin exited ({proc.returncode}); are {models_dir}'s models built?"
            )
        try:
            url = f"http://127.0.0.1:{ports['http']}/v2/health/ready"
            if urllib.request.urlopen(url, timeout=1).status == 200:
                return proc, ports
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("the origin was not ready in 180 s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--clients", default="1,32")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    clients = [int(c) for c in args.clients.split(",")]
    proc, ports = start_origin(args.models_dir)
    cells: dict[tuple[str, int, str], list[dict[str, float]]] = {}
    try:
        for r in range(args.rounds):
            for model in MODELS:
                for n in clients:
                    order = TRANSPORTS if r % 2 == 0 else tuple(reversed(TRANSPORTS))
                    for transport in order:
                        cell = asyncio.run(drive(transport, model, n, args.seconds, ports))
                        cells.setdefault((model, n, transport), []).append(cell)
                        print(f"round {r + 1} {model:7} {n:3} clients {transport:12} {cell}")
    finally:
        proc.terminate()
        proc.wait(15)
    results: dict[str, Any] = {}
    ratios: dict[str, Any] = {}
    for (model, n, transport), runs in cells.items():
        results.setdefault(model, {}).setdefault(str(n), {})[transport] = {
            key: statistics.median(run[key] for run in runs) for key in runs[0]
        }
    for model, by_clients in results.items():
        for n, cell in by_clients.items():
            base = cell["http_json"]["rps"] or float("nan")
            ratios.setdefault(model, {})[n] = {
                "binary_over_json": round(cell["http_binary"]["rps"] / base, 2),
                "grpc_over_json": round(cell["grpc"]["rps"] / base, 2),
            }
    report = {
        "when": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count()},
        "seconds": args.seconds,
        "rounds": args.rounds,
        "inputs": {
            "iris": "one row, FP32 [1, 4]",
            "minilm": f"one sentence, BYTES [1]: {SENTENCE!r}",
        },
        "results": results,
        "ratios": ratios,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(ratios, indent=2))


if __name__ == "__main__":
    main()
