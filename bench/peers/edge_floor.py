"""What the edge costs in front of the origin, against the floor, and what the origin's threads
change: servers up side by side, measured in alternation at the key cell.

    ./dev bench edge-floor [--pairs 5] [--duration 6] [--out FILE]

Started once each, then measured one after another in short windows, `--pairs` times (32
clients, short single inputs, as paired.py):

- `outpost-fp32`: the origin alone, default settings;
- `edge-nocache`, `edge-nocache-identity`: the edge in front of it, cache off, answering gzip
  (as mobile clients ask) or the origin's bytes unchanged;
- `relay`: bench/peers/relay.py in front of the same origin, copying bytes without parsing
  them: the floor for any process in the path;
- `bare-proxy`: bench/peers/bare_proxy.py, uvicorn serving a raw ASGI app that forwards with
  aiohttp and nothing else: the floor for an HTTP-aware process built on the edge's libraries;
- `outpost-fp32-shared`, `edge-nocache-shared`: the origin with the threads setting the model
  guide suggests when other busy processes share its cores (single-threaded batches, two at a
  time), alone and behind an edge.

Per window it records throughput, p99, each process's share of the CPU time used and its CPU
time per request (process CPU times on this VM also move with the hypervisor, so compare
windows of one run, not runs). Ratios compare windows of the same pair, seconds apart.
Results: bench/results/edge-floor.json.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import run
import servers
from paired import alternate, head, key_cell, options, requests_sent, throughput_ratios

from bench.lib.usage import cpu_per_request

OUT = run.ROOT / "bench" / "results" / "edge-floor.json"
ORDER = [
    "outpost-fp32",
    "edge-nocache",
    "edge-nocache-identity",
    "relay",
    "bare-proxy",
    "outpost-fp32-shared",
    "edge-nocache-shared",
]
# (numerator, denominator) window pairs compared by throughput.
RATIOS = {
    "edge_vs_origin": ("edge-nocache", "outpost-fp32"),
    "edge_identity_vs_origin": ("edge-nocache-identity", "outpost-fp32"),
    "relay_vs_origin": ("relay", "outpost-fp32"),
    "bare_proxy_vs_origin": ("bare-proxy", "outpost-fp32"),
    "shared_edge_vs_shared_origin": ("edge-nocache-shared", "outpost-fp32-shared"),
    "shared_origin_vs_origin": ("outpost-fp32-shared", "outpost-fp32"),
    "shared_edge_vs_edge": ("edge-nocache-shared", "edge-nocache"),
}


def main() -> None:
    args = options(__doc__, OUT, pairs=5, duration=6.0)
    specs = servers.by_name(run.ORIGIN_SETTINGS)
    windows = alternate(specs, ORDER, args.pairs, args.duration, "floor")
    for cells in windows.values():
        for cell in cells:
            sent = requests_sent(cell, args.duration)
            cell["cpu_us_per_request"] = cpu_per_request(cell["cpu_seconds"], sent)
            cell["system_us_per_request"] = cpu_per_request(cell["system_seconds"], sent)

    result: dict = {
        **head(ORDER),
        "cell": key_cell(args.duration),
        "shared_cores_setting": "onnx.intra_op_threads 1, batching.max_concurrent_batches 2",
        "windows": windows,
        "cpu_us_per_request_median": {},
        "system_us_per_request_median": {},
    }
    result["throughput_ratios"] = throughput_ratios(windows, RATIOS)
    for name, cells in windows.items():
        for key in ("cpu_us_per_request", "system_us_per_request"):
            names = {n for c in cells for n in c[key]}
            result[f"{key}_median"][name] = {
                n: round(statistics.median(c[key].get(n, 0) for c in cells)) for n in sorted(names)
            }
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "windows"}, indent=1))


if __name__ == "__main__":
    main()
