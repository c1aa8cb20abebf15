"""What each of the edge's guards costs at the key cell, and today's edge against an earlier one:
servers up side by side, measured in alternation (as edge_floor.py).

    ./dev bench edge-features [--pairs 5] [--duration 6] [--base REF] [--out FILE]

Started once each, in front of one origin (32 clients, short single inputs, cache off, gzip):

- `outpost-fp32`: the origin alone;
- `edge-base`: the edge of git revision `--base` (default: the start of this wave, fa69e6a),
  checked out in a worktree under .outpost/bench-base and run with the project's Python;
- `edge-quotas-off`: today's edge with request buckets only (no work or app buckets);
- `edge-nocache`: today's edge with its defaults: work and app quotas in memory (raised far
  above the load, so every request is counted and none refused), the HTTP limits, origin proof;
- `edge-quotas-redis`: the same quotas held in a real redis-server started here.

The ratios: quotas on against off (issue 24 asks >= 0.97x), Redis against memory, today's edge
against the base (issue 25 asks >= 0.97x with the limits and origin proof on), and each edge
against the origin alone (edge_floor.py's `edge_vs_origin`, for both revisions in one run).
Results: bench/results/edge-features.json.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import run
import servers
from paired import alternate, head, key_cell, options, throughput_ratios

from bench.lib import procs
from bench.lib.components import UNLIMITED

OUT = run.ROOT / "bench" / "results" / "edge-features.json"
BASE_REF = "fa69e6a"
ORDER = ["outpost-fp32", "edge-base", "edge-quotas-off", "edge-nocache", "edge-quotas-redis"]
RATIOS = {
    "quotas_on_vs_off": ("edge-nocache", "edge-quotas-off"),
    "quotas_redis_vs_memory": ("edge-quotas-redis", "edge-nocache"),
    "edge_vs_base_edge": ("edge-nocache", "edge-base"),
    "edge_vs_origin": ("edge-nocache", "outpost-fp32"),
    "base_edge_vs_origin": ("edge-base", "outpost-fp32"),
}
# Counted on every request, never refusing one at this load.
QUOTAS_ON = {
    "work_limits": {"inference": UNLIMITED},
    "app_rate_limits": {"inference": UNLIMITED},
    "app_work_limits": {"inference": UNLIMITED},
}


def base_checkout(ref: str) -> Path:
    """A detached git worktree of `ref` (made once, reused)."""
    sha = subprocess.run(
        ["git", "rev-parse", "--short", ref], cwd=run.ROOT, capture_output=True, text=True
    )
    if sha.returncode != 0:
        raise SystemExit(f"--base {ref!r}: not a revision of this repository")
    path = run.ROOT / ".outpost" / "bench-base" / sha.stdout.strip()
    if not (path / "edge").is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "worktree", "add", "--detach", "--force", str(path), ref],
            cwd=run.ROOT,
            check=True,
            capture_output=True,
        )
    return path


def start_redis(workdir: Path) -> procs.Server:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is missing: ./dev test installs it (apt-get)")
    port = procs.free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    log = workdir / "redis.log"
    server = procs.spawn([*argv, "--dir", str(workdir)], log, url=f"redis://127.0.0.1:{port}/0")
    procs.wait_until(server, lambda: _pong(port), "redis-server", 10)
    return server


def _pong(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def specs(base: Path, redis_url: str) -> dict[str, servers.ServerSpec]:
    origin = servers.by_name(run.ORIGIN_SETTINGS)["outpost-fp32"]
    redis = {"quota_store": "redis", "quota_redis_url": redis_url, **QUOTAS_ON}
    edges = [
        servers.edge_spec(  # an edge of then knows no work limits
            name="edge-base",
            label=f"edge at {BASE_REF}",
            settings={"work_limits": None},
            checkout=base,
        ),
        servers.edge_spec(
            name="edge-quotas-off", label="edge, request buckets only", settings={"work_limits": {}}
        ),
        servers.edge_spec(label="edge, quotas on (memory)", settings=QUOTAS_ON),
        servers.edge_spec(name="edge-quotas-redis", label="edge, quotas in Redis", settings=redis),
    ]
    return {s.name: s for s in [origin, *edges]}


def main() -> None:
    args = options(__doc__, OUT, pairs=5, duration=6.0)
    base = base_checkout(BASE_REF)
    with tempfile.TemporaryDirectory() as tmp:
        redis = start_redis(Path(tmp))
        try:
            windows = alternate(specs(base, redis.url), ORDER, args.pairs, args.duration, "feat")
        finally:
            redis.stop()
    result: dict = {
        **head(ORDER),
        "cell": key_cell(args.duration),
        "base": BASE_REF,
        "windows": windows,
        "throughput_ratios": throughput_ratios(windows, RATIOS),
    }
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "windows"}, indent=1))


if __name__ == "__main__":
    main()
