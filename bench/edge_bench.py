"""Edge benchmarks (never run as tests). One run, same machine, same load tool for every target:

1. cache-hit throughput through the local edge vs a minimal uvicorn app returning a constant;
2. added latency of a miss (edge -> origin) vs calling the origin directly (p50, interleaved).

    .venv/bin/python bench/edge_bench.py [--seconds 5] [--concurrency 16]

Writes bench/results/edge_bench.json. The load tool is a raw asyncio keep-alive HTTP/1.1
client (far cheaper per request than httpx, so it measures the server, not the client).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import free_port  # noqa: E402
from tests.edge.conftest import (  # noqa: E402
    Issuer,
    Proc,
    _spawn,
    serve_issuer,
    start_edge,
    start_origin,
    wait_http,
)

CONSTANT_APP = """
import uvicorn
BODY = b'{"object":"list","data":[{"embedding":[0.1,0.2,0.3]}]}'
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": BODY})
uvicorn.run(app, host="127.0.0.1", port=int(__import__("sys").argv[1]), log_level="warning",
            access_log=False)
"""


def request_bytes(port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    head = [
        f"POST {path} HTTP/1.1",
        f"host: 127.0.0.1:{port}",
        "content-type: application/json",
        f"content-length: {len(body)}",
    ]
    head += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> int:
    writer.write(raw)
    status_line = await reader.readline()
    length = 0
    chunked = False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode().partition(":")
        name = name.lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value:
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readline()).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.readexactly(length)
    return int(status_line.split()[1])


async def throughput(port: int, raw: bytes, seconds: float, concurrency: int) -> dict:
    done = 0
    errors = 0
    end = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done, errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.perf_counter() < end:
            if await one(reader, writer, raw) == 200:
                done += 1
            else:
                errors += 1
        writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"rps": done / (time.perf_counter() - t0), "errors": errors}


async def latencies(targets: dict[str, tuple[int, bytes]], n: int) -> dict[str, float]:
    conns = {k: await asyncio.open_connection("127.0.0.1", p) for k, (p, _) in targets.items()}
    samples: dict[str, list[float]] = {k: [] for k in targets}
    for i in range(n):
        for name, (_, raw) in targets.items():
            r, w = conns[name]
            t0 = time.perf_counter()
            status = await one(r, w, raw.replace(b"__N__", str(i).zfill(5).encode()))
            samples[name].append((time.perf_counter() - t0) * 1000)
            assert status == 200, (name, status)
    return {k: statistics.median(v[n // 10 :]) for k, v in samples.items()}


def main() -> None:
    import faulthandler

    faulthandler.dump_traceback_later(240, exit=True)
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--samples", type=int, default=300)
    args = p.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="edge-bench-"))
    from outpost.modelkit.tiny import build_tiny_embeddings

    models = logs / "models"
    build_tiny_embeddings(models / "tiny-embed", version=1, seed=0)
    issuer = serve_issuer(Issuer())
    issuer.add_key("ed-1", "EdDSA")
    token = issuer.token("ed-1", exp=int(time.time()) + 3600)
    cport = free_port()
    const = Proc(
        _spawn([sys.executable, "-c", CONSTANT_APP, str(cport)], logs / "c.log", {}),
        f"http://127.0.0.1:{cport}",
        logs / "c.log",
    )
    origin = start_origin(models, logs)
    edge = start_edge(
        {
            "origins": [{"url": origin.url}],
            "issuers": [{"issuer": issuer.url, "jwks_url": issuer.url + "/keys"}],
            "rate_limits": {"default": {"rate": 1e9, "burst": 1_000_000_000}},
        },
        logs,
    )
    wait_http(const, "/")
    try:
        body = json.dumps({"model": "tiny-embed", "input": "benchmark sentence"}).encode()
        auth = {"authorization": f"Bearer {token}"}
        eport = int(edge.url.rsplit(":", 1)[1])
        oport = int(origin.url.rsplit(":", 1)[1])
        hit = request_bytes(eport, "/v1/embeddings", body, auth)
        asyncio.run(throughput(eport, hit, 0.5, 2))  # warm: fills the cache
        asyncio.run(throughput(cport, request_bytes(cport, "/", body, {}), 0.5, 2))
        t_const = asyncio.run(
            throughput(cport, request_bytes(cport, "/", body, {}), args.seconds, args.concurrency)
        )
        t_hit = asyncio.run(throughput(eport, hit, args.seconds, args.concurrency))
        miss_body = b'{"model":"tiny-embed","input":"miss __N__"}'
        nocache = {**auth, "cache-control": "no-cache"}
        lat = asyncio.run(
            latencies(
                {
                    "direct": (oport, request_bytes(oport, "/v1/embeddings", miss_body, {})),
                    "edge": (eport, request_bytes(eport, "/v1/embeddings", miss_body, nocache)),
                },
                args.samples,
            )
        )
        result = {
            "constant_app_rps": round(t_const["rps"]),
            "edge_cache_hit_rps": round(t_hit["rps"]),
            "hit_ratio_vs_constant": round(t_hit["rps"] / t_const["rps"], 3),
            "miss_p50_direct_ms": round(lat["direct"], 3),
            "miss_p50_via_edge_ms": round(lat["edge"], 3),
            "miss_added_p50_ms": round(lat["edge"] - lat["direct"], 3),
            "concurrency": args.concurrency,
            "seconds": args.seconds,
            "errors": t_const["errors"] + t_hit["errors"],
        }
        out = ROOT / "bench" / "results" / "edge_bench.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
    finally:
        for proc in (edge, origin, const):
            proc.stop()


if __name__ == "__main__":
    main()
