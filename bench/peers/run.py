"""Side-by-side benchmark: Outpost's origin against the model servers users would pick instead.

Run it after `bench/peers/setup.sh` (`./dev bench peers` uses the load venv's Python it makes):
    ./dev bench peers                  # full matrix, 3 rounds
    ./dev bench peers --quick          # key cell only
    ./dev bench peers --report-only    # chart and docs table from bench/results/peers.json

Each server starts in turn on a free loopback port, is health-waited, checked for vector
agreement with Outpost's fp32 origin, warmed, driven by `loadgen.py` (a separate process) over a
matrix of concurrency x input length x batch size, and stopped. Peak RSS of the server's process
tree is sampled throughout. Round 1 runs the whole matrix; later rounds restart every server and
rerun only the key cell (32 clients, short, single), to state the spread. Before an Outpost
origin's cells, `engine_limit.py` measures its engine's own limit for long inputs (the same
model in-process, best batch) in the same run, so each long cell is also a ratio to it. Results
go to bench/results/peers.json; `report.py` renders the chart and the docs table from it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).parent))
import report
import servers

from bench.lib import procs
from bench.lib.issuer import BenchIssuer
from bench.lib.texts import make_texts
from bench.lib.usage import RssSampler

ROOT = servers.ROOT
RESULTS = ROOT / "bench" / "results" / "peers.json"
LOGS = ROOT / ".outpost" / "bench-logs"
STATE = ROOT / ".outpost" / "bench-models"

# (input kind, batch size, concurrency levels, duration multiplier). Batched long inputs stop at
# 4 clients and are measured twice as long: at ~40 long sentences/s on 2 cores one such request
# takes ~0.4 s alone, and 8 clients would mean ~3.5 s per request, too few in the window.
MATRIX: list[tuple[str, int, list[int], float]] = [
    ("short", 1, [1, 8, 32, 64], 1.0),
    ("long", 1, [1, 8, 32], 1.0),
    ("short", 16, [1, 8, 32], 1.0),
    ("long", 16, [1, 4], 2.0),
]
KEY_CELL = ("short", 1, 32, 1.0)

WARMUP_S = 1.5  # seconds of load discarded before each cell's measured window

# Outpost origin settings used for every Outpost run (recorded in the results).
ORIGIN_SETTINGS: dict[str, str] = {
    "OUTPOST_ORIGIN_LOG_LEVEL": "warning",
    "OUTPOST_ORIGIN_ACCESS_LOG": "false",  # peers run without access logs too
    "OUTPOST_ORIGIN_WATCH": "false",  # no hot reload needed while benchmarking
}

CHECK_SENTENCES = [
    "The weather is lovely today.",
    "Where is the nearest train station?",
    "My phone battery died during the flight.",
    "A quick brown fox jumps over the lazy dog.",
    "Order two coffees and a croissant for pickup at nine.",
]


# ---------------------------------------------------------------- HTTP helpers (stdlib only)
def post_json(url: str, payload: dict, headers: dict[str, str], timeout: float = 60.0) -> dict:
    data = json.dumps(payload).encode()
    req = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json", **headers}
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def embed(base: str, launch: servers.Launch, texts: list[str]) -> np.ndarray:
    body = post_json(
        base + launch.embeddings_path, {"model": launch.model, "input": texts}, launch.headers
    )
    rows = sorted(body["data"], key=lambda d: d["index"])
    return np.array([r["embedding"] for r in rows], dtype=np.float64)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> list[float]:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return [round(float(x), 6) for x in (a * b).sum(axis=1)]


# ---------------------------------------------------------------- process lifecycle
@contextmanager
def running(spec: servers.ServerSpec, ctx: dict, tag: str, start_timeout: float = 300.0):
    """Start `spec` (and anything it `needs`, via ctx["base_urls"]), yield (base, launch, rss)."""
    port = procs.free_port()
    launch = spec.launch(port, ctx)
    t0 = time.perf_counter()
    server = procs.spawn(
        launch.argv,
        LOGS / f"{spec.name}-{tag}.log",
        url=f"http://127.0.0.1:{port}",
        env=launch.env,
        cwd=launch.cwd,
    )
    sampler = RssSampler(server.pid)
    sampler.start()
    try:
        health = server.url + launch.health_path
        procs.wait_until(server, lambda: procs.answers(health), spec.name, start_timeout)
        embed(server.url, launch, ["warm up"])
        launch.start_s = round(time.perf_counter() - t0, 2)  # type: ignore[attr-defined]
        yield server.url, launch, sampler
    finally:
        sampler.stop()
        server.stop()


# ---------------------------------------------------------------- load
def loadgen_argv(
    base: str, launch: servers.Launch, inputs: Path, batch: int, conc: int, duration: float
) -> list[str]:
    """The load generator's command line for one cell against `base` (with the launch's
    headers), `WARMUP_S` discarded before its `duration`."""
    argv = [
        sys.executable,
        str(Path(__file__).with_name("loadgen.py")),
        "--url",
        base + launch.embeddings_path,
        "--model",
        launch.model,
        "--inputs",
        str(inputs),
        "--concurrency",
        str(conc),
        "--batch",
        str(batch),
        "--duration",
        str(duration),
        "--warmup",
        str(WARMUP_S),
    ]
    for name, value in launch.headers.items():
        argv += ["--header", f"{name}: {value}"]
    return argv


def run_cell(
    base: str,
    launch: servers.Launch,
    inputs: dict[str, Path],
    kind: str,
    batch: int,
    conc: int,
    duration: float,
    sampler: RssSampler,
) -> dict:
    sampler.reset_window()
    argv = loadgen_argv(base, launch, inputs[kind], batch, conc, duration)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 120)
    if out.returncode != 0:
        raise RuntimeError(f"loadgen failed: {out.stderr[-2000:]}")
    result = json.loads(out.stdout)
    result.update(
        {
            "input": kind,
            "peak_rss_mb": round(sampler.window_peak / 2**20, 1),
            "loadavg_1m_after": round(os.getloadavg()[0], 2),
        }
    )
    return result


def engine_limit(models_dir: str, seconds: float = 3.0, rounds: int = 2) -> dict:
    """The engine's limit for long inputs, in-process (best batch), for a single-model
    repository such as an origin run serves (see engine_limit.py)."""
    argv = [
        str(servers.PROJECT_PY),
        str(Path(__file__).with_name("engine_limit.py")),
        models_dir,
        "--kind",
        "long",
        "--seconds",
        str(seconds),
        "--rounds",
        str(rounds),
    ]
    return json.loads(servers.last_line(argv, 900, "engine limit"))


def warm(base: str, launch: servers.Launch, texts: dict[str, list[str]]) -> None:
    """A few requests of every shape so lazy allocations and JIT paths are done before timing."""
    for kind in ("short", "long"):
        for i in range(10):
            embed(base, launch, [texts[kind][i]])
        for i in range(3):
            embed(base, launch, texts[kind][i * 16 : (i + 1) * 16])


def check_vectors(
    base: str, launch: servers.Launch, reference: np.ndarray | None
) -> tuple[np.ndarray, dict]:
    vecs = embed(base, launch, CHECK_SENTENCES)
    info: dict = {
        "dim": int(vecs.shape[1]),
        "norms": [round(float(n), 4) for n in np.linalg.norm(vecs, axis=1)],
    }
    if reference is not None:
        cos = cosine_rows(vecs, reference)
        info.update({"cosine_vs_reference": cos, "min_cosine": min(cos)})
    return vecs, info


# ---------------------------------------------------------------- environment record
def venv_versions(python: Path, names: list[str]) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for n in sys.argv[1:]:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))"
    )
    try:
        r = subprocess.run(
            [str(python), "-c", code, *names], capture_output=True, text=True, cwd="/"
        )
        return json.loads(r.stdout)
    except (OSError, json.JSONDecodeError):
        return {}


def machine_info() -> dict:
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    pkgs = [
        "outpost",
        "onnxruntime",
        "tokenizers",
        "numpy",
        "fastapi",
        "uvicorn",
        "torch",
        "infinity-emb",
        "optimum",
        "sentence-transformers",
        "transformers",
        "aiohttp",
        "isal",
        "bentoml",
    ]
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_at_start": os.getloadavg(),
        "versions": {
            "outpost venv": venv_versions(servers.PROJECT_PY, pkgs),
            "infinity venv": venv_versions(servers.VENVS / "infinity/bin/python", pkgs),
            "st venv": venv_versions(servers.VENVS / "st/bin/python", pkgs),
            "bentoml venv": venv_versions(servers.VENVS / "bentoml/bin/python", pkgs),
            "loadgen venv": venv_versions(Path(sys.executable), pkgs),
        },
    }


# ---------------------------------------------------------------- main
def prepare_inputs(tmp: Path) -> tuple[dict[str, Path], dict[str, list[str]]]:
    texts = {"short": make_texts("short", 4000), "long": make_texts("long", 2000)}
    paths = {}
    for kind, xs in texts.items():
        paths[kind] = tmp / f"{kind}.json"
        paths[kind].write_text(json.dumps(xs))
    return paths, texts


def bench_server(
    spec: servers.ServerSpec,
    ctx: dict,
    inputs: dict[str, Path],
    texts: dict[str, list[str]],
    cells: list[tuple[str, int, int, float]],
    duration: float,
    tag: str,
    reference: np.ndarray | None,
    by_name: dict[str, servers.ServerSpec],
) -> tuple[dict, np.ndarray | None]:
    record: dict = {"server": spec.name, "round": tag, "cells": []}
    vecs = None
    try:
        with ExitStack() as stack:
            for dep in spec.needs:  # e.g. the origin behind the edge, started first
                dep_base, _, _ = stack.enter_context(
                    running(by_name[dep], ctx, f"{tag}-for-{spec.name}")
                )
                ctx[f"base_{dep}"] = dep_base
            base, launch, sampler = stack.enter_context(running(spec, ctx, tag))
            record["start_s"] = launch.start_s  # type: ignore[attr-defined]
            vecs, record["vector_check"] = check_vectors(base, launch, reference)
            warm(base, launch, texts)
            record["idle_rss_mb"] = round(sampler.current() / 2**20, 1)
            if "--models-dir" in launch.argv and any(k == "long" for k, *_ in cells):
                models_dir = launch.argv[launch.argv.index("--models-dir") + 1]
                record["engine_limit_long"] = engine_limit(models_dir)
                print(
                    f"  {spec.name:18s} engine limit (long, in-process): "
                    f"{record['engine_limit_long']['limit_inputs_per_s']} inputs/s at batch "
                    f"{record['engine_limit_long']['best_batch']}",
                    flush=True,
                )
            for kind, batch, conc, mult in cells:
                cell = run_cell(base, launch, inputs, kind, batch, conc, duration * mult, sampler)
                print(
                    f"  {spec.name:18s} {kind:5s} b={batch:<2d} c={conc:<2d} "
                    f"{cell['sentences_per_s']:8.1f} sent/s  p50 {cell['p50_ms']} ms  "
                    f"p99 {cell['p99_ms']} ms  err {cell['errors']}  rss {cell['peak_rss_mb']} MB",
                    flush=True,
                )
                record["cells"].append(cell)
            record["peak_rss_mb"] = round(sampler.peak / 2**20, 1)
    except Exception as exc:  # a failing peer must not sink the whole run
        record["failed"] = f"{type(exc).__name__}: {exc}"
        print(f"  {spec.name}: FAILED {record['failed']}", flush=True)
    return record, vecs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--servers",
        default="",
        help="comma-separated server names (default: all but servers.optional_specs)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the key cell (>=1)")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds measured per cell")
    parser.add_argument("--quick", action="store_true", help="key cell only, no matrix")
    parser.add_argument("--report-only", action="store_true", help="re-render chart and docs")
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help="results file (only the default is published)"
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="update --out in place: replace the (server, round) records this run measures",
    )
    parser.add_argument(
        "--only-cell",
        default="",
        help="with --merge: measure only this cell, e.g. short,16,32, and replace it in round 1",
    )
    parser.add_argument("--note", default="", help="with --merge: why, stored in results.notes")
    parser.add_argument(
        "--origin-env", action="append", default=[], help="extra OUTPOST_ORIGIN_*=value for runs"
    )
    args = parser.parse_args()

    # SIGTERM (e.g. `timeout`) unwinds normally, so every started server is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.report_only:  # renders whichever results --out names
        report.render(json.loads(args.out.read_text()))
        return

    ORIGIN_SETTINGS.update(kv.split("=", 1) for kv in args.origin_env)
    issuer = BenchIssuer()
    ctx: dict = {"issuer": issuer}
    specs = servers.all_specs(ORIGIN_SETTINGS)
    by_name = servers.by_name(ORIGIN_SETTINGS)
    if args.servers:
        wanted = args.servers.split(",")
        unknown = sorted(set(wanted) - set(by_name))
        if unknown:
            parser.error(f"unknown servers {unknown}; known: {', '.join(by_name)}")
        specs = [s for s in by_name.values() if s.name in wanted]  # benchmark order
    # Outpost's origins, and everything in front of one, need its models prepared.
    if any(s.name.startswith("outpost") or s.needs for s in specs):
        try:
            servers.prepare_origin_models(ctx, STATE)
        except Exception as exc:  # origin runs will then fail and be recorded as failed
            print(f"could not prepare Outpost's models: {exc}", flush=True)
    matrix = [(k, b, c, m) for k, b, cs, m in MATRIX for c in cs]

    with tempfile.TemporaryDirectory() as tmp:
        inputs, texts = prepare_inputs(Path(tmp))
        results: dict = {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": machine_info(),
            "settings": {
                "duration_s_per_cell": args.duration,
                "loadgen": "closed loop, aiohttp, separate process, 1.5 s discarded warm-up, "
                "counts the requests that complete inside the window",
                "matrix": MATRIX,
                "key_cell": KEY_CELL,
                "origin_env": ORIGIN_SETTINGS,
                "servers": {
                    s.name: {"label": s.label, "precision": s.precision, "notes": s.notes}
                    for s in specs
                },
                "short_tokens": "10-15 (mean 12.7)",
                "long_tokens": "121-129 (mean 125)",
                "batched_inputs_per_request": 16,
            },
            "runs": [],
        }
        previous = json.loads(args.out.read_text()) if args.merge else None
        reference = None
        if previous and previous.get("reference_vectors"):
            reference = np.array(previous["reference_vectors"])
        only = None
        if args.only_cell:
            k, b, c = args.only_cell.split(",")
            only = (k, int(b), int(c), 2.0 if (k, int(b)) == ("long", 16) else 1.0)
        started = time.time()
        for rnd in range(1, args.rounds + 1):
            cells = [KEY_CELL] if (args.quick or rnd > 1) else matrix
            if only:
                cells = [only]
            print(f"round {rnd}: {len(cells)} cells x {len(specs)} servers", flush=True)
            for spec in specs:
                rec, vecs = bench_server(
                    spec, ctx, inputs, texts, cells, args.duration, f"r{rnd}", reference, by_name
                )
                if spec.name == "outpost-fp32" and vecs is not None:
                    if reference is None:
                        reference = vecs
                        results["reference_vectors"] = vecs.tolist()
                    rec["vector_check"]["is_reference"] = True
                results["runs"].append(rec)
                if not args.merge:
                    args.out.parent.mkdir(parents=True, exist_ok=True)
                    args.out.write_text(json.dumps(results, indent=1))
        if previous is not None:
            results = merge(previous, results, only, args.note)
        else:
            results["machine"]["loadavg_at_end"] = os.getloadavg()
            results["wall_time_s"] = round(time.time() - started, 1)
        results["summary"] = report.summarise(results)
        args.out.write_text(json.dumps(results, indent=1))
        if args.out.resolve() == RESULTS.resolve():
            report.render(results)
        else:  # a trial run elsewhere must not replace the published page and chart
            print(f"results in {args.out}; docs left as they are (render with --report-only)")


def merge(previous: dict, new: dict, only: tuple | None, note: str) -> dict:
    """Fold a follow-up run into an earlier results file (same machine, documented in notes)."""
    out = dict(previous)
    out.setdefault("notes", []).append(
        {"date": new["date"], "loadavg_at_start": new["machine"]["loadavg_at_start"], "note": note}
    )
    if "reference_vectors" in new and "reference_vectors" not in out:
        out["reference_vectors"] = new["reference_vectors"]
    out["settings"]["servers"].update(new["settings"]["servers"])
    runs = out["runs"]
    for rec in new["runs"]:
        idx = next(
            (
                i
                for i, r in enumerate(runs)
                if (r["server"], r["round"]) == (rec["server"], rec["round"])
            ),
            None,
        )
        if only is None or idx is None or rec.get("failed"):
            if idx is None:
                runs.append(rec)
            elif only is None:
                runs[idx] = {**rec, "rerun": note}
            continue
        for cell in rec["cells"]:
            cell["rerun"] = note
            old = runs[idx]["cells"]
            key = (cell["input"], cell["batch"], cell["concurrency"])
            pos = [
                j for j, c in enumerate(old) if (c["input"], c["batch"], c["concurrency"]) == key
            ]
            if pos:
                old[pos[0]] = cell
            else:
                old.append(cell)
    return out


if __name__ == "__main__":
    main()
