"""Profile one server under the key load with py-spy and summarise where its CPU time goes.

    .outpost/bench-venvs/loadgen/bin/python bench/peers/pyspy_profile.py [--server outpost-fp32]

Starts the server like run.py does, warms it, then samples it with `py-spy record` (all threads,
native frames off) while loadgen drives 32 clients of short single-sentence requests. Writes the
collapsed stacks to .outpost/bench-logs/profile-<server>.txt and a summary (functions with the
most samples, self and inclusive) to bench/results/profile-<server>.json.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import run
import servers
from issuer import BenchIssuer

OUT = run.ROOT / "bench" / "results"


def summarise(collapsed: Path, top: int = 25) -> dict:
    """Self and inclusive sample counts per function from py-spy's raw (collapsed) output."""
    self_c: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        count = int(n)
        frames = [
            f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0] + ")" if " (" in f else f
            for f in stack.split(";")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--server", default="outpost-fp32")
    parser.add_argument("--duration", type=float, default=15.0)
    args = parser.parse_args()
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
            raw = run.LOGS / f"profile-{args.server}.txt"
            prof = subprocess.Popen(
                [
                    str(pyspy),
                    "record",
                    "--pid",
                    str(_server_pid(base)),
                    "--format",
                    "raw",
                    "--rate",
                    "200",
                    "--duration",
                    str(int(args.duration) + 2),
                    "--subprocesses",
                    "--output",
                    str(raw),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            cell = run.run_cell(base, launch, inputs, "short", 1, 32, args.duration, _sampler)
            prof.wait(timeout=120)
    summary = summarise(raw)
    summary["load"] = cell
    (OUT / f"profile-{args.server}.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    issuer.close()


def _server_pid(base: str) -> int:
    """The pid listening on base's port (the server's own process, not a wrapper)."""
    import psutil

    port = int(base.rsplit(":", 1)[1])
    for conn in psutil.net_connections("tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
            return conn.pid
    raise RuntimeError(f"no process listens on {port}")


if __name__ == "__main__":
    main()
