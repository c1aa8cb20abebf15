"""Edge benchmarks (never run as tests). One run, same machine, same load tool for every target:

1. cache-hit throughput through the local edge vs a minimal uvicorn app returning a constant
   (and, to show where the rest goes, vs the same constant app answering with the edge's exact
   hit response: same headers, same body), measured in `--rounds` rounds of short windows, the
   three servers in alternating order, each ratio taken within a round: the median and the
   spread are reported, since background load on a shared machine moves between minutes;
2. added latency of a miss (edge -> origin) vs calling the origin directly (p50, interleaved
   on one keep-alive connection each, so the client's own cost is the same on both paths).
3. the Worker's import times inside real Pyodide (Node, npm `pyodide`), median of 3 runs.

    ./dev bench edge [--seconds 3] [--rounds 9] [--concurrency 16] [--out FILE]
    (or .venv/bin/python bench/edge_bench.py ...)

Writes bench/results/edge_bench.json (or --out). Throughput load tool: `wrk` (C, one thread,
keep-alive; `apt-get install wrk`) when it is on PATH, else the raw asyncio keep-alive HTTP/1.1
client (bench/lib/rawhttp.py); the result names the tool used. Both the servers and the load
tool share this machine's cores, so compare ratios from one run, not absolute numbers across
runs. Each throughput target also reports the server process's CPU time per request (psutil),
which other load on the machine disturbs far less than requests/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402

from bench.lib import components, constant_app, procs, rawhttp, results, usage  # noqa: E402
from bench.lib.issuer import BenchIssuer  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "edge_bench.json"
# The Worker's harness inside real Pyodide, shared with the Pyodide test (run, not imported).
PYODIDE_HARNESS = ROOT / "tests" / "edge" / "pyodide" / "run_worker.mjs"
WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = os.getenv("WRK_BODY")
wrk.headers["content-type"] = "application/json"
local auth = os.getenv("WRK_AUTH")
if auth ~= nil and auth ~= "" then wrk.headers["authorization"] = auth end
"""


def wrk_rps(
    url: str, script: Path, body: bytes, auth: str, seconds: float, concurrency: int
) -> dict:
    """Requests/s of 200 answers measured by `wrk` (one thread) running `script` (WRK_SCRIPT)."""
    env = {**os.environ, "WRK_BODY": body.decode(), "WRK_AUTH": auth}
    out = subprocess.run(
        ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        env=env,
        timeout=seconds + 60,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    total = int(re.search(r"(\d+) requests in", out).group(1))
    return {"rps": rps, "requests": total, "errors": int(bad.group(1)) if bad else 0}


def python_rps(port: int, raw: bytes, seconds: float, concurrency: int) -> dict:
    """Requests/s of 200 answers from the raw asyncio client (`rawhttp.closed_loop`)."""
    load = asyncio.run(rawhttp.closed_loop(port, lambda _: raw, concurrency, seconds))
    return {"rps": load.ok / load.elapsed, "requests": load.ok + load.errors, "errors": load.errors}


async def latencies(targets: dict[str, tuple[int, bytes]], n: int) -> dict[str, float]:
    """Median ms per target over `n` requests, one connection each, interleaved (first 10 %
    dropped); `__N__` in a request becomes its number, so every request is a new one."""
    conns = {k: await asyncio.open_connection("127.0.0.1", p) for k, (p, _) in targets.items()}
    samples: dict[str, list[float]] = {k: [] for k in targets}
    for i in range(n):
        for name, (_, raw) in targets.items():
            r, w = conns[name]
            t0 = time.perf_counter()
            status = await rawhttp.exchange(r, w, raw.replace(b"__N__", str(i).zfill(5).encode()))
            samples[name].append((time.perf_counter() - t0) * 1000)
            assert status == 200, (name, status)
    for _, w in conns.values():
        w.close()
    return {k: statistics.median(v[n // 10 :]) for k, v in samples.items()}


def worker_import_times(work: Path, runs: int = 3) -> dict | None:
    """Median import times of the Worker inside real Pyodide (the Pyodide test's harness): the
    `workers` SDK, the entry module, and what the first request adds. None when node, the npm
    `pyodide` package, the harness or the SDK wheel (.outpost/wheels, see the Pyodide test) is
    missing."""
    node = shutil.which("node")
    wheels = sorted((ROOT / ".outpost" / "wheels").glob("workers_runtime_sdk-*.whl"))
    if node is None or not wheels or not PYODIDE_HARNESS.is_file():
        return None
    if not (ROOT / "node_modules" / "pyodide").is_dir():
        return None
    from edge.vendor import vendor

    modules = vendor(work / "python_modules")
    samples: list[dict] = []
    for _ in range(runs):
        proc = subprocess.Popen(
            [node, str(PYODIDE_HARNESS), str(ROOT), str(modules), str(wheels[-1])],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "WORKER_ENV": "{}"},
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()  # EOF if the harness dies: bounded
        proc.terminate()
        proc.wait(timeout=10)
        samples.append(json.loads(line))
    keys = ("sdk_import_ms", "entry_import_ms", "first_request_import_ms", "load_ms")
    out = {k: round(statistics.median(s[k] for s in samples), 1) for k in keys}
    out["runs"] = runs
    return out


def main() -> None:
    import faulthandler

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=3.0, help="per throughput window")
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--samples", type=int, default=300)
    p.add_argument(
        "--python-client", action="store_true", help="use the asyncio client even if wrk exists"
    )
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()
    faulthandler.dump_traceback_later(180 + 4 * args.rounds * args.seconds, exit=True)
    logs = Path(tempfile.mkdtemp(prefix="edge-bench-"))
    from outpost.modelkit.tiny import build_tiny_embeddings

    models = logs / "models"
    build_tiny_embeddings(models / "tiny-embed", version=1, seed=0)
    issuer = BenchIssuer()
    servers: dict[str, procs.Server] = {}
    use_wrk = shutil.which("wrk") is not None and not args.python_client
    try:
        oport, eport, cport, sport = (procs.free_port() for _ in range(4))
        argv = components.origin_argv(oport, models)
        servers["origin"] = procs.start_server(argv, oport, "/v2/health/ready", logs / "o.log")
        env = procs.clean_env(components.edge_env(issuer.url, issuer.jwks_url))
        argv = components.edge_argv(eport, servers["origin"].url)
        servers["edge"] = procs.start_server(argv, eport, "/healthz", logs / "e.log", env=env)
        servers["const"] = constant_app.start(cport, logs / "c.log")
        body = json.dumps({"model": "tiny-embed", "input": "benchmark sentence"}).encode()
        bearer = f"Bearer {issuer.token()}"
        auth = {"authorization": bearer}
        wrk_script = logs / "post.lua"
        wrk_script.write_text(WRK_SCRIPT)

        def rps(name: str, path: str, with_auth: bool, seconds: float) -> dict:
            """Throughput, plus the server's CPU time per request: robust to other load on
            the machine, which moves requests/s but not the work each request costs."""
            server = {name: psutil.Process(servers[name].pid)}
            before = usage.cpu_seconds(server)
            port = int(servers[name].url.rsplit(":", 1)[1])
            if use_wrk:
                url = f"http://127.0.0.1:{port}{path}"
                out = wrk_rps(
                    url, wrk_script, body, bearer if with_auth else "", seconds, args.concurrency
                )
            else:
                raw = rawhttp.request_bytes(port, path, body, auth if with_auth else {})
                out = python_rps(port, raw, seconds, args.concurrency)
            spent = usage.spent(before, usage.cpu_seconds(server))
            per_request = usage.cpu_per_request(spent, out["requests"], ndigits=3)
            out["cpu_us_per_request"] = per_request.get(name, 0.0)
            return out

        rps("edge", "/v1/embeddings", True, 1)  # warm: fills the cache
        # The edge's real hit response, replayed by a second constant app.
        captured = httpx.post(
            servers["edge"].url + "/v1/embeddings",
            content=body,
            headers={**auth, "accept": ""},
            timeout=10,
        )
        assert captured.headers["x-cache"] == "HIT", captured.headers
        kept = [(k, v) for k, v in captured.headers.items() if k not in ("date", "server")]
        servers["same"] = constant_app.start(sport, logs / "same.log", [kept, captured.text])
        rps("const", "/", False, 1)
        rps("same", "/", False, 1)
        targets = {
            "const": ("const", "/", False),
            "hit": ("edge", "/v1/embeddings", True),
            "same": ("same", "/", False),
        }
        rounds: list[dict[str, dict]] = []
        for i in range(args.rounds):
            order = list(targets) if i % 2 == 0 else list(reversed(targets))
            rounds.append({name: rps(*targets[name], args.seconds) for name in order})

        def per_round(fn) -> list[float]:
            return [round(fn(r), 3) for r in rounds]

        def med(values: list[float]) -> float:
            return round(statistics.median(values), 3)

        def spread(values: list[float]) -> str:
            return f"{min(values):.2f}-{max(values):.2f}"

        def mid(target: str, field: str) -> float:
            """`field` of `target`, median over the rounds."""
            return statistics.median(r[target][field] for r in rounds)

        vs_const = per_round(lambda r: r["hit"]["rps"] / r["const"]["rps"])
        vs_same = per_round(lambda r: r["hit"]["rps"] / r["same"]["rps"])
        cpu_ratio = per_round(
            lambda r: r["const"]["cpu_us_per_request"] / r["hit"]["cpu_us_per_request"]
        )
        miss_body = b'{"model":"tiny-embed","input":"miss __N__"}'
        nocache = {**auth, "cache-control": "no-cache"}
        lat = asyncio.run(
            latencies(
                {
                    "direct": (oport, rawhttp.request_bytes(oport, "/v1/embeddings", miss_body)),
                    "edge": (
                        eport,
                        rawhttp.request_bytes(eport, "/v1/embeddings", miss_body, nocache),
                    ),
                },
                args.samples,
            )
        )
        result = {
            "constant_app_rps": round(mid("const", "rps")),
            "edge_cache_hit_rps": round(mid("hit", "rps")),
            "hit_ratio_vs_constant": med(vs_const),
            "hit_ratio_vs_constant_spread": spread(vs_const),
            "hit_ratio_vs_constant_rounds": vs_const,
            "constant_app_same_response_rps": round(mid("same", "rps")),
            "hit_ratio_vs_same_response": med(vs_same),
            "hit_ratio_vs_same_response_spread": spread(vs_same),
            "hit_ratio_vs_same_response_rounds": vs_same,
            "constant_app_cpu_us_per_request": round(mid("const", "cpu_us_per_request"), 1),
            "edge_hit_cpu_us_per_request": round(mid("hit", "cpu_us_per_request"), 1),
            "same_response_cpu_us_per_request": round(mid("same", "cpu_us_per_request"), 1),
            "hit_cpu_ratio_constant_over_edge": med(cpu_ratio),
            "hit_cpu_ratio_rounds": cpu_ratio,
            "hit_response_headers": len(kept),
            "hit_response_body_bytes": len(captured.content),
            "miss_p50_direct_ms": round(lat["direct"], 3),
            "miss_p50_via_edge_ms": round(lat["edge"], 3),
            "miss_added_p50_ms": round(lat["edge"] - lat["direct"], 3),
            "load_tool": "wrk -t1 (keep-alive)" if use_wrk else "python asyncio raw client",
            "latency_tool": "python asyncio raw client, 1 connection per target, interleaved",
            "concurrency": args.concurrency,
            "seconds_per_window": args.seconds,
            "rounds": args.rounds,
            "latency_samples": args.samples,
            "errors": sum(t["errors"] for r in rounds for t in r.values()),
        }
        worker = worker_import_times(logs)
        if worker is not None:  # flat keys: the docs' benchmark table shows scalars only
            result.update({f"worker_{k}": v for k, v in worker.items() if k != "runs"})
        results.write_json(args.out, result)
        print(json.dumps(result, indent=2))
    finally:
        for server in servers.values():
            server.stop()
        issuer.close()


if __name__ == "__main__":
    main()
