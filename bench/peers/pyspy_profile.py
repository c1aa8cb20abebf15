"""Profile one server under the key load with py-spy and summarise where its CPU time goes.

    ./dev bench profile [--server outpost-fp32] [--duration 15] [--native]

Starts the server like run.py does, warms it, then samples it with `py-spy record` (all threads,
native frames off unless `--native`) while loadgen drives 32 clients of short single-sentence
requests. Writes the collapsed stacks to .outpost/bench-logs/profile-<server>[-native].txt and a
summary (functions with the most samples, self and inclusive; the server's user and system CPU
time per request; with `--native` also the share of each part of the process, `by_part`) to
bench/results/profile-<server>[-native].json (or --out).
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import psutil
import run
import servers
from paired import requests_sent

from bench.lib.issuer import BenchIssuer
from bench.lib.usage import cpu_per_request, cpu_seconds

OUT = run.ROOT / "bench" / "results"


def stacks(collapsed: Path) -> Iterator[tuple[list[str], int]]:
    """(frames, sample count) per line of py-spy's raw (collapsed) output, outermost first."""
    for line in collapsed.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if stack:
            yield stack.split(";"), int(n)


def summarise(collapsed: Path, top: int = 25) -> dict:
    """Self and inclusive sample counts per function from py-spy's raw (collapsed) output."""
    self_c: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for raw_frames, count in stacks(collapsed):
        frames = [
            f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0] + ")" if " (" in f else f
            for f in raw_frames
        ]
        total += count
        self_c[frames[-1]] += count
        for f in set(frames):
            incl[f] += count
    pct = lambda c: round(100 * c / total, 1) if total else 0.0  # noqa: E731
    return {
        "samples": total,
        "self_top": [(f, pct(c)) for f, c in self_c.most_common(top)],
        "inclusive_top": [(f, pct(c)) for f, c in incl.most_common(top)],
    }


# C frames a native profile treats apart: the process waiting for events (not CPU time: left
# out) and the kernel's socket calls (see by_part).
_IDLE = ("epoll_wait", "epoll_pwait")
_SOCKET_CALLS = frozenset(
    {"write", "writev", "send", "sendmsg", "read", "readv", "recv", "recvmsg"}
)


def by_part(collapsed: Path) -> dict:
    """Shares of a native profile's samples per part of the process: the garbage collector by
    its C frames, C extensions (`pkg/mod.cpython-*.so`) by their package, the rest by the package
    of the innermost Python frame (C code a Python function calls counts to its package).

    Samples inside a socket call are counted apart, not in `shares`: py-spy samples a thread
    that is runnable as well as one that runs, and on saturated cores a process that has just
    written to a socket often waits there for a core while the woken reader runs. The kernel's
    real share of the CPU is the process's system time (`cpu_us_per_request` in the summary)."""
    parts: collections.Counter[str] = collections.Counter()
    in_socket_calls = 0
    for frames, n in stacks(collapsed):
        leaf = frames[-1].split(" (")[0]
        if leaf in _IDLE:
            continue
        if leaf in _SOCKET_CALLS and "libc" in frames[-1]:
            in_socket_calls += n
            continue
        python = [i for i, f in enumerate(frames) if ".py:" in f or ".py)" in f]
        innermost = python[-1] if python else -1
        extension = [
            f.split(" (")[1].split("/")[0]
            for f in frames[innermost + 1 :]
            if " (" in f and ".cpython-" in f and "/" in f.split(" (")[1]
        ]
        if any(f.startswith("gc_collect") for f in frames):
            part = "garbage collector"
        elif extension:
            part = extension[0]
        elif innermost >= 0:
            part = frames[innermost].split(" (")[1].split("/")[0].split(".py")[0]
        else:
            part = "event loop (C)"
        parts[part] += n
    total = sum(parts.values())
    return {
        "samples_outside_socket_calls": total,
        "samples_in_socket_calls": in_socket_calls,
        "shares": {p: round(100 * c / total, 1) for p, c in parts.most_common()} if total else {},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--server", default="outpost-fp32")
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument(
        "--native", action="store_true", help="sample C frames too (uvloop, parsers, syscalls)"
    )
    parser.add_argument(
        "--out", type=Path, help="summary file (default: bench/results/profile-<server>.json)"
    )
    args = parser.parse_args()
    suffix = "-native" if args.native else ""
    issuer = BenchIssuer()
    ctx: dict = {"issuer": issuer}
    specs = servers.by_name(run.ORIGIN_SETTINGS)
    if args.server.startswith(("outpost", "edge")):
        servers.prepare_origin_models(ctx, run.STATE)
    spec = specs[args.server]
    pyspy = Path(sys.executable).with_name("py-spy")
    with tempfile.TemporaryDirectory() as tmp:
        inputs, texts = run.prepare_inputs(Path(tmp))
        with ExitStack() as stack:
            for dep in spec.needs:
                dep_base, _, _ = stack.enter_context(run.running(specs[dep], ctx, "profile-dep"))
                ctx[f"base_{dep}"] = dep_base
            base, launch, _sampler = stack.enter_context(run.running(spec, ctx, "profile"))
            run.warm(base, launch, texts)
            run.LOGS.mkdir(parents=True, exist_ok=True)
            raw = run.LOGS / f"profile-{args.server}{suffix}.txt"
            pid = _server_pid(base)
            server = {"server": psutil.Process(pid)}
            before = cpu_seconds(server)["server"]
            prof = subprocess.Popen(
                [
                    str(pyspy),
                    "record",
                    "--pid",
                    str(pid),
                    "--format",
                    "raw",
                    "--rate",
                    "200",
                    "--duration",
                    str(int(args.duration) + 2),
                    "--subprocesses",
                    *(["--native"] if args.native else []),
                    "--output",
                    str(raw),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            cell = run.run_cell(base, launch, inputs, "short", 1, 32, args.duration, _sampler)
            after = cpu_seconds(server)["server"]
            prof.wait(timeout=120)
    summary = summarise(raw)
    if args.native:
        summary["by_part"] = by_part(raw)
    spent = {"user": after[0] - before[0], "system": after[1] - before[1]}
    summary["cpu_us_per_request"] = cpu_per_request(spent, requests_sent(cell, args.duration))
    summary["load"] = cell
    out = args.out or OUT / f"profile-{args.server}{suffix}.json"
    out.write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    issuer.close()


def _server_pid(base: str) -> int:
    """The pid listening on base's port (the server's own process, not a wrapper)."""
    port = int(base.rsplit(":", 1)[1])
    for conn in psutil.net_connections("tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
            return conn.pid
    raise RuntimeError(f"no process listens on {port}")


if __name__ == "__main__":
    main()
