"""Draw the Grafana dashboard's panels from a real Prometheus, as a PNG (for the docs).

    python -m outpost.monitoring.snapshot --prometheus http://127.0.0.1:9190 \\
        --minutes 10 --out docs/assets/dashboard.png

Grafana cannot be installed here, so this renders what the dashboard would show without it:
the same panels, laid out by the dashboard JSON's grid, each running its own PromQL (Grafana's
`$__rate_interval` and `$model` replaced) through Prometheus's HTTP API, drawn with matplotlib.
It is an honest stand-in, not a Grafana screenshot: the data and queries are real, the styling
is ours.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx

from outpost.monitoring.dashboard import DASHBOARD_FILE

BG, PANEL, TEXT, DIM = "#111217", "#181b1f", "#ccccdc", "#8e8e9e"
COLOURS = ["#73bf69", "#f2cc0c", "#5794f2", "#ff9830", "#f2495c", "#b877d9", "#8ab8ff", "#fade2a"]
THRESHOLD_COLOURS = {"green": "#73bf69", "orange": "#ff9830", "red": "#f2495c"}
ROW_UNIT = 0.32  # inches per grid row
COL_UNIT = 0.72  # inches per grid column


def substitute(expr: str, rate: str) -> str:
    return expr.replace("$__rate_interval", rate).replace("$model", ".*")


def _legend(fmt: str, labels: dict[str, str]) -> str:
    if fmt in ("", "__auto"):
        return ",".join(f"{k}={v}" for k, v in labels.items() if k != "__name__") or "value"
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m[1], ""), fmt)


def _format(value: float, unit: str) -> str:
    if value != value:  # NaN
        return "n/a"
    if unit == "percentunit":
        return f"{value * 100:.2f}%"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"
    if unit == "reqps":
        return f"{value:.2f} req/s" if abs(value) < 1 else f"{value:.1f} req/s"
    if value == int(value):
        return f"{value:.0f}"
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.0f}"


class Prometheus:
    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=url.rstrip("/"), timeout=30)

    def range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        resp = self.client.get(
            "/api/v1/query_range",
            params={"query": expr, "start": start, "end": end, "step": step},
        )
        body = resp.json()
        if body.get("status") != "success":
            raise RuntimeError(f"query failed: {expr}: {body.get('error')}")
        return body["data"]["result"]


def render(prometheus_url: str, out: Path, minutes: float, rate: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.patches
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    doc = json.loads(DASHBOARD_FILE.read_text())
    panels = doc["panels"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    width, height = 24 * COL_UNIT, rows * ROW_UNIT + 0.6
    fig = plt.figure(figsize=(width, height), dpi=80, facecolor=BG)
    prom = Prometheus(prometheus_url)
    end = time.time()
    start = end - minutes * 60
    step = max(5.0, minutes * 60 / 150)
    pad = 0.06  # inches between panels
    title_room, axis_room = 0.3, 0.25  # inches above (panel title) and below (time axis)

    def rect(grid: dict[str, int], plot: bool = True) -> list[float]:
        x0 = grid["x"] * COL_UNIT + pad + (0.55 if plot else 0)
        y_top = grid["y"] * ROW_UNIT + pad + (title_room if plot else 0)
        w = grid["w"] * COL_UNIT - 2 * pad - (0.6 if plot else 0)
        h = grid["h"] * ROW_UNIT - 2 * pad - ((title_room + axis_room) if plot else 0)
        return [x0 / width, 1 - (y_top + h) / height, w / width, h / height]

    for panel in panels:
        grid = panel["gridPos"]
        if panel["type"] == "row":
            box = rect(grid, plot=False)
            fig.text(
                box[0],
                box[1] + box[3] / 2,
                panel["title"],
                color=TEXT,
                fontsize=13,
                fontweight="bold",
                va="center",
            )
            continue
        box = rect(grid, plot=False)
        fig.add_artist(
            matplotlib.patches.Rectangle(
                (box[0], box[1]), box[2], box[3], transform=fig.transFigure, color=PANEL, zorder=-1
            )
        )
        stat = panel["type"] == "stat"
        ax = fig.add_axes(box if stat else rect(grid), facecolor=PANEL)
        for spine in ax.spines.values():
            spine.set_color("#2c2f36")
        fig.text(
            box[0] + 0.06 / width,
            box[1] + box[3] - 0.06 / height,
            panel["title"],
            color=TEXT,
            fontsize=10,
            va="top",
        )
        unit = panel["fieldConfig"]["defaults"].get("unit", "short")
        series = [
            (target, s)
            for target in panel["targets"]
            for s in prom.range(substitute(target["expr"], rate), start, end, step)
        ]
        if stat:
            for spine in ax.spines.values():
                spine.set_visible(False)
            ax.set_xticks([])
            ax.set_yticks([])
            values = [float(v) for _, v in series[0][1]["values"]] if series else []
            known = [v for v in values if v == v]  # Grafana's "last not null"
            value = known[-1] if known else float("nan")
            colour = TEXT
            for step_ in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]:
                if step_["value"] is None or value >= step_["value"]:
                    colour = THRESHOLD_COLOURS.get(step_["color"], TEXT)
            ax.text(
                0.5,
                0.42,
                _format(value, unit),
                color=colour,
                fontsize=22,
                ha="center",
                va="center",
                transform=ax.transAxes,
            )
            continue
        for i, (target, s) in enumerate(series[:8]):
            xs = [(float(t) - end) / 60 for t, _ in s["values"]]
            ys = [float(v) for _, v in s["values"]]
            ax.plot(
                xs,
                ys,
                color=COLOURS[i % len(COLOURS)],
                linewidth=1.4,
                label=_legend(target["legendFormat"], s["metric"]),
            )
        ax.set_xlim(-minutes, 0)
        ax.tick_params(colors=DIM, labelsize=7)
        ax.grid(color="#2c2f36", linewidth=0.6)
        ax.yaxis.set_major_formatter(
            matplotlib.ticker.FuncFormatter(lambda v, _pos, u=unit: _format(v, u))
        )
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _p: f"{v:.0f}m"))
        if series:
            ax.legend(
                loc="upper left", fontsize=7, facecolor=PANEL, edgecolor=PANEL, labelcolor=TEXT
            )
        else:
            ax.text(0.5, 0.5, "no data", color=DIM, ha="center", transform=ax.transAxes)
    fig.text(
        0.005,
        0.004,
        f"{doc['title']}: the dashboard's own queries on a real Prometheus scraping "
        f"`outpost up --monitor`, last {minutes:g} minutes, drawn by outpost.monitoring.snapshot "
        "(not Grafana)",
        color=DIM,
        fontsize=8,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, facecolor=BG)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m outpost.monitoring.snapshot")
    parser.add_argument("--prometheus", default="http://127.0.0.1:9190")
    parser.add_argument("--out", type=Path, default=Path("docs/assets/dashboard.png"))
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", default="1m", help="what $__rate_interval becomes")
    args = parser.parse_args(argv)
    print(render(args.prometheus, args.out, args.minutes, args.rate))


if __name__ == "__main__":
    main()
