"""`outpost bench NAME [ARGS...]`: the benchmarks in bench/, each one a script run on its own.

Benchmarks are never part of the tests. Each script writes its figures to bench/results/ (or
where its `--out` says), and the docs build renders them. The side-by-side ones against peer
servers (bench/peers/) run under the load venv `bench/peers/setup.sh` makes, the rest under the
project's own Python. docs/dev/bench.md describes the layout.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from outpost.errors import OutpostError

ROOT = Path(__file__).resolve().parent.parent
LOADGEN_PYTHON = ROOT / ".outpost" / "bench-venvs" / "loadgen" / "bin" / "python"


@dataclass(frozen=True)
class Benchmark:
    script: str  # path from the repository root
    measures: str  # one line: what it measures
    peers: bool = False  # runs under the load venv of bench/peers/setup.sh


BENCHMARKS: dict[str, Benchmark] = {
    "origin": Benchmark(
        "bench/origin_load.py",
        "origin throughput and latency against the engine's in-process limit and a naive server",
    ),
    "edge": Benchmark(
        "bench/edge_bench.py",
        "edge cache hits against a constant uvicorn app, what a miss adds, Worker import times",
    ),
    "caller-proof": Benchmark(
        "bench/caller_proof_bench.py",
        "the caller proof's cost per request (sign, check, vs a token) and through the edge",
    ),
    "gzip": Benchmark(
        "bench/gzip_bench.py", "CPU and size of the edge's gzip: zlib (Worker) and ISA-L (local)"
    ),
    "http-clients": Benchmark(
        "bench/http_clients.py", "client CPU per request of aiohttp and httpx (the edge's choice)"
    ),
    "soak": Benchmark(
        "bench/soak.py", "mixed traffic through the whole local stack: errors, latency, RSS growth"
    ),
    "peers": Benchmark(
        "bench/peers/run.py",
        "the origin against infinity-emb, BentoML and FastAPI + sentence-transformers",
        peers=True,
    ),
    "paired": Benchmark(
        "bench/peers/paired.py",
        "origin, infinity-emb and the edge side by side in alternating windows (key cell)",
        peers=True,
    ),
    "edge-floor": Benchmark(
        "bench/peers/edge_floor.py",
        "the edge in front of the origin against a bare proxy and a byte relay, CPU per request",
        peers=True,
    ),
    "edge-features": Benchmark(
        "bench/peers/edge_features.py",
        "what the edge's quotas (memory, Redis) cost, and today's edge against an earlier one",
        peers=True,
    ),
    "threads-spin": Benchmark(
        "bench/peers/threads_spin.py",
        "onnxruntime threads spinning or sleeping, alone and behind the edge",
        peers=True,
    ),
    "transports": Benchmark(
        "bench/transports.py",
        "OIP over HTTP JSON, HTTP binary tensors and gRPC: iris and MiniLM at 1 and 32 clients",
    ),
    "fairness": Benchmark(
        "bench/fairness.py",
        "a victim's small requests while another subject floods one origin: p99 against idle",
    ),
    "tracing": Benchmark(
        "bench/tracing_overhead.py",
        "origin throughput at 32 clients with tracing off, at the default sampling and at 1.0",
    ),
    "hostile-connections": Benchmark(
        "bench/hostile_connections.py",
        "other clients' p99 at the local edge while one hostile connection of each kind is open",
    ),
    "device-trust": Benchmark(
        "bench/device_trust_bench.py",
        "CPU per request of the edge's DPoP proof and App Check checks",
    ),
    "vault-storage": Benchmark(
        "bench/vault_storage.py",
        "Vault's storage after 10 000 device registrations, their expiry and the purge",
    ),
    "engine-limit": Benchmark(
        "bench/peers/engine_limit.py",
        "the engine's own throughput in-process (best batch), short and long inputs",
        peers=True,
    ),
    "long-inputs": Benchmark(
        "bench/peers/long_inputs.py",
        "served long-input throughput against the engine's limit at 8 and 32 clients",
        peers=True,
    ),
    "long-input-accounting": Benchmark(
        "bench/peers/long_input_accounting.py",
        "where the cores go while long inputs are served: engine, event loop, load, idle",
        peers=True,
    ),
    "profile": Benchmark(
        "bench/peers/pyspy_profile.py",
        "where one server's CPU time goes under the key load (py-spy)",
        peers=True,
    ),
}


def python_for(bench: Benchmark) -> tuple[Path, str | None]:
    """The Python that runs `bench`, and a note to show when it is not the one it should be."""
    if not bench.peers or LOADGEN_PYTHON.exists():
        return (LOADGEN_PYTHON if bench.peers else Path(sys.executable)), None
    note = (
        "no load venv (.outpost/bench-venvs/loadgen): running with the project's Python; "
        "bench/peers/setup.sh makes it, and the peer servers' venvs"
    )
    return Path(sys.executable), note


def command(name: str, args: list[str]) -> tuple[list[str], str | None]:
    """The command line that runs benchmark `name` with `args`, and a note for the user."""
    bench = BENCHMARKS.get(name)
    if bench is None:
        raise OutpostError(
            f"no benchmark named {name!r}",
            hint=f"choose one of {', '.join(BENCHMARKS)} (`outpost bench` lists them)",
        )
    python, note = python_for(bench)
    return [str(python), str(ROOT / bench.script), *args], note


def run(name: str, args: list[str]) -> int:
    """Run benchmark `name` from the repository root; its exit code."""
    argv, note = command(name, args)
    if note:
        print(f"note: {note}", file=sys.stderr)
    return subprocess.call(argv, cwd=ROOT)
