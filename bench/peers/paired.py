"""Paired key-cell comparison: servers up side by side, measured in alternation.

    ./dev bench paired [--pairs 6] [--duration 5] [--out FILE]

On a shared 2-core machine the background load moves a lot between minutes, so run.py's rounds
(each server started in turn) show a wide spread. Here Outpost's fp32 origin, infinity-emb
(optimum) and the edge in front of that same origin are all started once (idle servers use no
CPU), then measured one after another in short windows, `--pairs` times, at the key cell
(32 clients, short single inputs). Each ratio compares windows seconds apart. The edge is
measured twice: as mobile clients call it (accepting gzip, so it compresses every answer) and
asking for `Accept-Encoding: identity` (the origin's bytes, forwarded unchanged), to separate
what forwarding costs from what compressing costs. Results: bench/results/peers-paired.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import report
import run
import servers

from bench.lib import usage
from bench.lib.issuer import BenchIssuer
from bench.lib.results import date_utc

OUT = run.ROOT / "bench" / "results" / "peers-paired.json"
ORDER = ["outpost-fp32", "infinity-optimum", "edge-nocache", "edge-nocache-identity"]


def options(description: str | None, out: Path, pairs: int, duration: float) -> argparse.Namespace:
    """The command line of every side-by-side script: --pairs, --duration (s), --out."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--pairs", type=int, default=pairs)
    parser.add_argument("--out", type=Path, default=out, help="results file")
    parser.add_argument("--duration", type=float, default=duration)
    return parser.parse_args()


def head(order: list[str]) -> dict:
    """The start of a side-by-side result: when, and in which order the servers alternated."""
    note = "alternating: " + " -> ".join(order) + ", reversed every other pair"
    return {"date": date_utc(), "order": note}


def key_cell(duration: float) -> dict:
    """The key cell, as results record it."""
    cell = dict(zip(("input", "batch", "concurrency"), report.KEY, strict=True))
    return {**cell, "duration_s": duration}


def requests_sent(cell: dict, duration: float) -> float:
    """Requests a load of `duration` measured seconds sent in all: the load generator counts
    only its measured window, but its warm-up requests use CPU too, so count them at its rate."""
    return cell["requests_ok"] * (duration + run.WARMUP_S) / duration


def alternate(
    specs: dict[str, servers.ServerSpec],
    order: list[str],
    pairs: int,
    duration: float,
    tag: str,
    cells: list[tuple[str, int, int]] | None = None,
) -> dict[str, list[dict]]:
    """Start the servers in `order` once (each warmed; later ones may front earlier ones, and
    edges trust a token issuer started here), then measure each of `cells` (input kind, inputs
    per request, clients; the key cell unless given) on each in turn, `pairs` times, reversing
    the order every other pair. Each window records its cell, its CPU shares and each
    process's CPU seconds, in all and in the kernel (`cpu_seconds`)."""
    windows: dict[str, list[dict]] = {n: [] for n in order}
    ctx: dict = {}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        ctx["issuer"] = BenchIssuer()
        stack.callback(ctx["issuer"].close)
        servers.prepare_origin_models(ctx, run.STATE)
        inputs, texts = run.prepare_inputs(Path(tmp))
        live = {}
        for name in order:
            base, launch, sampler = stack.enter_context(run.running(specs[name], ctx, tag))
            ctx[f"base_{name}"] = base
            run.warm(base, launch, texts)
            live[name] = (base, launch, sampler)
        procs = {n: s.proc for n, (_, _, s) in live.items()}
        for i in range(pairs):
            for name in order if i % 2 == 0 else list(reversed(order)):
                base, launch, sampler = live[name]
                for kind, batch, clients in cells or [report.KEY]:
                    cpu0 = usage.cpu_seconds(procs, children=True)
                    cell = run.run_cell(
                        base, launch, inputs, kind, batch, clients, duration, sampler
                    )
                    cpu1 = usage.cpu_seconds(procs, children=True)
                    spent = usage.spent(cpu0, cpu1)
                    cell["cpu_share"] = usage.cpu_shares(spent)
                    cell["cpu_seconds"] = {n: round(t, 4) for n, t in spent.items()}
                    # The kernel's part of it (socket calls, wake-ups): the rest is user space.
                    cell["system_seconds"] = {n: round(cpu1[n][1] - cpu0[n][1], 4) for n in cpu1}
                    windows[name].append(cell)
                    print(
                        f"  {i} {name:22s} {kind}:{batch}:{clients:<3d} "
                        f"{cell['sentences_per_s']:7.1f} sent/s p99 {cell['p99_ms']} ms "
                        f"err {cell['errors']} cpu {cell['cpu_share']}",
                        flush=True,
                    )
    return windows


def throughput_ratios(
    windows: dict[str, list[dict]], pairs: dict[str, tuple[str, str]]
) -> dict[str, dict]:
    """For each name -> (a, b): a's throughput over b's in each pair of windows, and the
    median."""
    out = {}
    for key, (a, b) in pairs.items():
        per_pair = [
            round(x["sentences_per_s"] / y["sentences_per_s"], 3)
            for x, y in zip(windows[a], windows[b], strict=True)
            if x["sentences_per_s"] and y["sentences_per_s"]
        ]
        median = round(statistics.median(per_pair), 3) if per_pair else None
        out[key] = {"per_pair": per_pair, "median": median}
    return out


def main() -> None:
    args = options(__doc__, OUT, pairs=6, duration=5.0)
    windows = alternate(
        servers.by_name(run.ORIGIN_SETTINGS), ORDER, args.pairs, args.duration, "paired"
    )

    def ratios(a: str, b: str, field: str) -> list[float]:
        return [
            round(x[field] / y[field], 3)
            for x, y in zip(windows[a], windows[b], strict=True)
            if x[field] and y[field]
        ]

    def origin_share(edge: str) -> list[float]:
        """Per pair: the origin's CPU share through `edge` over its share alone."""
        return [
            round(e["cpu_share"].get("outpost-fp32", 0.0) / o["cpu_share"]["outpost-fp32"], 3)
            for e, o in zip(windows[edge], windows["outpost-fp32"], strict=True)
        ]

    result = {
        **head(ORDER),
        "cell": key_cell(args.duration),
        "windows": windows,
        "origin_vs_infinity_throughput": ratios(
            "outpost-fp32", "infinity-optimum", "sentences_per_s"
        ),
        "origin_vs_infinity_p99": ratios("outpost-fp32", "infinity-optimum", "p99_ms"),
        "edge_vs_origin_throughput": ratios("edge-nocache", "outpost-fp32", "sentences_per_s"),
        "edge_vs_origin_p99": ratios("edge-nocache", "outpost-fp32", "p99_ms"),
        "edge_identity_vs_origin_throughput": ratios(
            "edge-nocache-identity", "outpost-fp32", "sentences_per_s"
        ),
        "edge_identity_vs_origin_p99": ratios("edge-nocache-identity", "outpost-fp32", "p99_ms"),
        # With the cores saturated the origin's throughput follows its share of the CPU.
        "edge_vs_origin_cpu_share": origin_share("edge-nocache"),
        "edge_identity_vs_origin_cpu_share": origin_share("edge-nocache-identity"),
    }
    for k in list(result):
        if isinstance(result[k], list) and k != "windows" and result[k]:
            result[k + "_median"] = round(statistics.median(result[k]), 3)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "windows"}, indent=1))


if __name__ == "__main__":
    main()
