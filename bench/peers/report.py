"""Turn bench/results/peers.json into a summary (ratios, spread), a chart and the docs table.

./dev bench peers --report-only
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "docs" / "assets" / "benchmarks-peers.png"
DOC = ROOT / "docs" / "benchmarks-peers.md"
START, END = "<!-- peers-results:start -->", "<!-- peers-results:end -->"
PAIRED = ROOT / "bench" / "results" / "peers-paired.json"
EDGE_FLOOR = ROOT / "bench" / "results" / "edge-floor.json"
KEY = ("short", 1, 32)
EDGE_TARGET = 0.9  # the edge (cache off) keeps at least this share of the origin's throughput
ENGINE_TARGET = 0.95  # long inputs served at least at this share of the engine's own limit


def _key_cells(results: dict) -> dict[str, list[dict]]:
    """server -> key-cell results, one per round, in round order."""
    out: dict[str, list[dict]] = {}
    for run in results["runs"]:
        for cell in run.get("cells", []):
            if (cell["input"], cell["batch"], cell["concurrency"]) == KEY:
                out.setdefault(run["server"], []).append({**cell, "round": run["round"]})
    return out


def _spread(values: list[float]) -> dict:
    med = statistics.median(values)
    return {
        "values": values,
        "median": round(med, 2),
        "min": min(values),
        "max": max(values),
        "spread_pct": round(100 * (max(values) - min(values)) / med, 1) if med else None,
    }


def summarise(results: dict) -> dict:
    """Key-cell medians and spread per server, and per-round ratios against infinity-emb."""
    key = _key_cells(results)
    per_server = {
        name: {
            "sentences_per_s": _spread([c["sentences_per_s"] for c in cells]),
            "p99_ms": _spread([c["p99_ms"] for c in cells if c["p99_ms"] is not None] or [0]),
        }
        for name, cells in key.items()
    }
    infinity = [n for n in key if n.startswith("infinity")]
    best_inf = max(infinity, key=lambda n: per_server[n]["sentences_per_s"]["median"], default=None)
    ratios: dict = {"reference": best_inf}
    if best_inf:
        by_round = {c["round"]: c for c in key[best_inf]}
        for name, cells in key.items():
            tp = [
                c["sentences_per_s"] / by_round[c["round"]]["sentences_per_s"]
                for c in cells
                if c["round"] in by_round and by_round[c["round"]]["sentences_per_s"]
            ]
            p99 = [
                c["p99_ms"] / by_round[c["round"]]["p99_ms"]
                for c in cells
                if c["round"] in by_round and c["p99_ms"] and by_round[c["round"]]["p99_ms"]
            ]
            if tp:
                ratios[name] = {
                    "throughput_ratio": _spread([round(x, 3) for x in tp]),
                    "p99_ratio": _spread([round(x, 3) for x in p99]) if p99 else None,
                }
    target: dict = {}
    fp32 = ratios.get("outpost-fp32")
    if fp32:
        tp, p99 = fp32["throughput_ratio"]["median"], (fp32["p99_ratio"] or {}).get("median")
        target["origin_vs_infinity"] = {
            "throughput_ratio_median": tp,
            "p99_ratio_median": p99,
            "met": bool(tp >= 1.2 and p99 is not None and p99 <= 1.0),
            "rule": ">= 1.2x throughput and <= 1.0x p99 vs the faster infinity engine",
        }
    if "edge-nocache" in key and "outpost-fp32" in key:
        origin = {c["round"]: c["sentences_per_s"] for c in key["outpost-fp32"]}
        rel = [
            c["sentences_per_s"] / origin[c["round"]]
            for c in key["edge-nocache"]
            if c["round"] in origin
        ]
        if rel:
            med = statistics.median(rel)
            target["edge_vs_origin"] = {
                "throughput_ratio": _spread([round(x, 3) for x in rel]),
                "met": bool(med >= EDGE_TARGET),
                "rule": "edge (cache off) throughput within 10% of the origin alone",
            }
    return {
        "key_cell": dict(zip(("input", "batch", "concurrency"), KEY, strict=True)),
        "per_server": per_server,
        "ratios": ratios,
        "targets": target,
        "long_vs_engine": long_vs_engine(results),
    }


def long_vs_engine(results: dict) -> dict:
    """Each long-input cell of an Outpost server (round 1) as a share of its engine's own limit
    measured in the same run (engine_limit.py; the edge is compared with its origin's)."""
    runs = [r for r in results["runs"] if r["round"] == "r1" and not r.get("failed")]
    origin = next((r for r in runs if r["server"] == "outpost-fp32"), {})
    out: dict = {}
    for run in runs:
        limit = (run.get("engine_limit_long") or {}).get("limit_inputs_per_s")
        if limit is None and run["server"].startswith("edge"):
            limit = (origin.get("engine_limit_long") or {}).get("limit_inputs_per_s")
        if not limit:
            continue
        cells = {
            f"{c['batch']}x{c['concurrency']}": round(c["sentences_per_s"] / limit, 3)
            for c in run["cells"]
            if c["input"] == "long"
        }
        single = [cells.get(f"1x{n}") for n in (8, 32)]
        out[run["server"]] = {
            "engine_limit_inputs_per_s": limit,
            "ratio_by_cell": cells,
            "met": all(x is not None and x >= ENGINE_TARGET for x in single),
            "rule": f"single long inputs at 8 and 32 clients >= {ENGINE_TARGET}x the engine's "
            "limit (in-process, best batch, same run)",
        }
    return out


def _matrix_rows(results: dict) -> list[tuple]:
    rows = []
    for run in results["runs"]:
        if run["round"] != "r1":
            continue
        label = results["settings"]["servers"].get(run["server"], {}).get("label", run["server"])
        if run.get("failed"):
            rows.append((label, "failed", run["failed"][:80], "", "", "", "", ""))
            continue
        for c in run["cells"]:
            rows.append(
                (
                    label,
                    c["input"],
                    c["batch"],
                    c["concurrency"],
                    f"{c['sentences_per_s']:.0f}",
                    f"{c['req_per_s']:.1f}",
                    f"{c['p50_ms']:.0f}" if c["p50_ms"] else "-",
                    f"{c['p99_ms']:.0f}" if c["p99_ms"] else "-",
                    f"{c['peak_rss_mb']:.0f}",
                )
            )
    return rows


def markdown(results: dict) -> str:
    """The generated part of docs/benchmarks-peers.md."""
    s = results.get("summary") or summarise(results)
    labels = {k: v["label"] for k, v in results["settings"]["servers"].items()}
    m = results["machine"]
    lines = [
        f"Measured {results.get('date', '')} on {m['cpu']}, {m['affinity_cpus']} cores, "
        f"{m['memory_gib']} GiB, Python {m['python']}; load average at start "
        f"{', '.join(f'{x:.2f}' for x in m['loadavg_at_start'])}. Each cell: "
        f"{results['settings']['duration_s_per_cell']} s measured after a discarded warm-up, "
        "closed loop. Raw numbers: `bench/results/peers.json`.",
        "",
        "### Key cell: 32 clients, short inputs, one sentence per request",
        "",
        "| server | sentences/s (median) | spread across rounds | p99 ms (median) | "
        "throughput vs infinity | p99 vs infinity |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    ref = s["ratios"].get("reference")
    for name, v in s["per_server"].items():
        r = s["ratios"].get(name, {})
        tp = r.get("throughput_ratio", {}).get("median") if r else None
        p99 = (r.get("p99_ratio") or {}).get("median") if r else None
        sp = v["sentences_per_s"]
        lines.append(
            f"| {labels.get(name, name)} | {sp['median']:.0f} | "
            f"{sp['min']:.0f}-{sp['max']:.0f} ({sp['spread_pct']}%, n={len(sp['values'])}) | "
            f"{v['p99_ms']['median']:.0f} | {f'{tp:.2f}x' if tp else '-'} | "
            f"{f'{p99:.2f}x' if p99 else '-'} |"
        )
    lines += ["", f"Ratios are per round against {labels.get(ref, ref)}, then the median.", ""]
    floor = edge_floor_target()
    for key, t in s["targets"].items():
        if key == "edge_vs_origin" and floor:
            # Rounds restart every server; their spread is wider than the margin in question.
            lines.append(
                f"- Target (rounds): {t['rule']}: median "
                f"{statistics.median(t['throughput_ratio']['values']):.3f}x, not decided here "
                "(rounds too noisy)."
            )
            lines.append(
                f"- Target (side by side, `edge_floor.py`, {len(floor['per_pair'])} pairs, "
                f"{floor['date']}): {t['rule']}: {floor_verdict(floor)}."
            )
            continue
        verdict = "**met**" if t["met"] else "**not met**"
        lines.append(f"- Target (rounds): {t['rule']}: {verdict}.")
    engine = s.get("long_vs_engine") or {}
    if engine:
        lines += [
            "",
            "### Long inputs against the engine's own limit (same run)",
            "",
            "The origin's model run in-process with batches back to back at its best batch "
            "size (`bench/peers/engine_limit.py`), then each long-input cell as a share of it.",
            "",
            "| server | engine limit (inputs/s) | share per cell (inputs x clients) | target |",
            "|---|---:|---|---|",
        ]
        for name, e in engine.items():
            shares = ", ".join(f"{k}: {v:.2f}x" for k, v in e["ratio_by_cell"].items())
            verdict = "**met**" if e["met"] else "**not met**"
            lines.append(
                f"| {labels.get(name, name)} | {e['engine_limit_inputs_per_s']:.0f} | {shares} "
                f"| {verdict} |"
            )
    lines += paired_markdown()
    lines += [
        "",
        "![throughput by concurrency](assets/benchmarks-peers.png)",
        "",
        "### Full matrix (round 1)",
        "",
        "| server | input | batch | clients | sentences/s | req/s | p50 ms | p99 ms "
        "| peak RSS MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += ["| " + " | ".join(str(x) for x in row) + " |" for row in _matrix_rows(results)]
    if results.get("notes"):
        lines += ["", "Follow-up measurements folded into this run:", ""]
        lines += [f"- {n['date']}: {n['note']}" for n in results["notes"]]
    lines += ["", "### Vector agreement with Outpost's fp32 origin (cosine, 5 sentences)", ""]
    lines += ["| server | min cosine | start time s | idle RSS MB |", "|---|---:|---:|---:|"]
    for run in results["runs"]:
        if run["round"] == "r1" and "vector_check" in run:
            vc = run["vector_check"]
            cos = "reference" if vc.get("is_reference") else vc.get("min_cosine", "-")
            lines.append(
                f"| {labels.get(run['server'], run['server'])} | {cos} | {run.get('start_s')} | "
                f"{run.get('idle_rss_mb')} |"
            )
    return "\n".join(lines) + "\n"


def edge_floor_target(path: Path = EDGE_FLOOR) -> dict | None:
    """The edge/origin throughput ratios of bench/peers/edge_floor.py's alternating pairs, with
    the run's date, if it has run."""
    if not path.exists():
        return None
    f = json.loads(path.read_text())
    r = f["throughput_ratios"]["edge_vs_origin"]
    return {**r, "date": f["date"]} if r["per_pair"] else None


def floor_verdict(r: dict) -> str:
    met = "**met**" if r["median"] >= EDGE_TARGET else "**not met**"
    return (
        f"median {r['median']:.2f}x ({min(r['per_pair']):.2f}x-{max(r['per_pair']):.2f}x per "
        f"pair): {met}"
    )


def paired_markdown(path: Path = PAIRED) -> list[str]:
    """The side-by-side (alternating windows) comparison, if bench/peers/paired.py has run."""
    if not path.exists():
        return []
    p = json.loads(path.read_text())
    w = p["windows"]

    def fmt(xs: list[float]) -> str:
        return ", ".join(f"{x:.2f}" for x in xs)

    tp, p99 = p["origin_vs_infinity_throughput"], p["origin_vs_infinity_p99"]
    etp, ep99 = p["edge_vs_origin_throughput"], p["edge_vs_origin_p99"]
    extra = []
    if p.get("edge_identity_vs_origin_throughput"):  # runs before this variant existed lack it
        itp, ip99 = p["edge_identity_vs_origin_throughput"], p["edge_identity_vs_origin_p99"]
        extra = [
            "- Edge (cache off, `Accept-Encoding: identity`: the origin's bytes, no gzip) / "
            f"origin throughput: median **{statistics.median(itp):.2f}x** ({fmt(itp)}); p99: "
            f"median **{statistics.median(ip99):.2f}x**. Against the line above: what "
            "compressing costs, within the window-to-window noise."
        ]
    if p.get("edge_vs_origin_cpu_share"):  # runs before the CPU shares were recorded lack it

        def share(server: str, process: str) -> float:
            return statistics.median(c["cpu_share"].get(process, 0.0) for c in w[server]) * 100

        kept, kept_id = p["edge_vs_origin_cpu_share"], p["edge_identity_vs_origin_cpu_share"]
        extra.append(
            "- Where the CPU went (median share of all CPU time used in a window): with the "
            f"origin alone, origin {share('outpost-fp32', 'outpost-fp32'):.0f}% and load "
            f"generator {share('outpost-fp32', 'load generator'):.0f}%; through the edge, "
            f"origin {share('edge-nocache', 'outpost-fp32'):.0f}%, edge "
            f"{share('edge-nocache', 'edge-nocache'):.0f}%, load generator "
            f"{share('edge-nocache', 'load generator'):.0f}% (identity: edge "
            f"{share('edge-nocache-identity', 'edge-nocache-identity'):.0f}%, load generator "
            f"{share('edge-nocache-identity', 'load generator'):.0f}%). With the cores "
            "saturated the origin's throughput follows its share; through the edge it keeps a "
            f"median **{statistics.median(kept):.2f}x** of its share alone ({fmt(kept)}), "
            f"with identity **{statistics.median(kept_id):.2f}x** ({fmt(kept_id)}): steadier "
            "between windows than requests/s."
        )
    rows = [
        f"| {name} | {statistics.median(c['sentences_per_s'] for c in cells):.0f} | "
        f"{min(c['sentences_per_s'] for c in cells):.0f}-"
        f"{max(c['sentences_per_s'] for c in cells):.0f} | "
        f"{statistics.median(c['p99_ms'] for c in cells):.0f} |"
        for name, cells in w.items()
    ]
    return [
        "",
        f"### Side by side: {len(tp)} alternating windows ({p['date']})",
        "",
        "Servers started once and measured in alternation, "
        f"{p['cell']['duration_s']} s per window, same key cell; each ratio compares windows "
        "seconds apart, so background load on the shared machine affects both sides alike "
        "(`bench/peers/paired.py`, raw: `bench/results/peers-paired.json`).",
        "",
        "| server | sentences/s (median) | range | p99 ms (median) |",
        "|---|---:|---:|---:|",
        *rows,
        "",
        f"- Outpost fp32 / infinity (optimum) throughput: median **{statistics.median(tp):.2f}x**"
        f" (per window: {fmt(tp)}); p99: median **{statistics.median(p99):.2f}x** ({fmt(p99)}).",
        f"- Edge (cache off) / origin throughput: median **{statistics.median(etp):.2f}x** "
        f"({fmt(etp)}); p99: median **{statistics.median(ep99):.2f}x**. The load generator "
        "accepts gzip, as mobile clients do, so the edge compresses every answer; the origin "
        "alone sends them uncompressed.",
        *extra,
    ]


def chart(results: dict, path: Path = CHART) -> None:
    """Sentences/s vs clients, one panel per (input, batch), one line per server."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {k: v["label"] for k, v in results["settings"]["servers"].items()}
    panels = [(k, b) for k, b, *_ in results["settings"]["matrix"]]
    # Two panels per row and one legend below them: legible at the docs' page width (~700 px)
    # and on a phone, where the image shrinks to the screen.
    cols = 2
    rows = -(-len(panels) // cols)
    fig, grid = plt.subplots(rows, cols, figsize=(9, 3.4 * rows + 1.2), squeeze=False)
    axes = [ax for row in grid for ax in row]
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    for ax, (kind, batch) in zip(axes, panels, strict=False):
        for run in results["runs"]:
            if run["round"] != "r1" or run.get("failed"):
                continue
            pts = sorted(
                (c["concurrency"], c["sentences_per_s"])
                for c in run["cells"]
                if c["input"] == kind and c["batch"] == batch
            )
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, marker="o", label=labels.get(run["server"], run["server"]))
        ax.set_xscale("log", base=2)
        ticks = sorted(
            {
                c
                for k, b, cs, *_ in results["settings"]["matrix"]
                for c in cs
                if (k, b) == (kind, batch)
            }
        )
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.set_title(f"{kind} inputs, {batch} per request")
        ax.set_xlabel("concurrent clients")
        ax.set_ylabel("sentences / s")
        ax.grid(alpha=0.3)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=2, fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 1.1 / (3.4 * rows + 1.2), 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def render(results: dict) -> None:
    """Write the chart and replace the generated block in docs/benchmarks-peers.md."""
    chart(results)
    block = f"{START}\n{markdown(results)}{END}"
    text = DOC.read_text() if DOC.exists() else f"# Benchmarks against peers\n\n{START}\n{END}\n"
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    DOC.write_text(head + block + tail)
