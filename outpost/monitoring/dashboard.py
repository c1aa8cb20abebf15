"""The Grafana dashboard for the edge and the origins, generated from one panel list.

    python -m outpost.monitoring.dashboard            # rewrite deploy/monitoring/grafana/...
    python -m outpost.monitoring.dashboard --check    # exit 1 when the file is out of date

The JSON is ready for Grafana's file provisioning (`deploy/monitoring/grafana/provisioning/`);
its data source is a variable, so it works with whatever Prometheus the operator names. The
test suite checks that the checked-in file is what this module generates and that every query
parses as PromQL and names a metric the code registers (`outpost.monitoring.catalog`).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_FILE = ROOT / "deploy" / "monitoring" / "grafana" / "dashboards" / "outpost.json"
UID = "outpost-overview"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"
MODEL = 'model=~"$model"'


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    """One panel: `kind` is Grafana's panel type (timeseries or stat), `width` of 24 columns."""

    title: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: str = "timeseries"
    width: int = 8
    height: int = 8
    description: str = ""
    thresholds: tuple[tuple[float | None, str], ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


def _q(expr: str, legend: str = "") -> Query:
    """A query; `[RATE]` becomes Grafana's rate interval, `{MODEL}` the model variable."""
    expr = expr.replace("[RATE]", f"[{RATE}]").replace("{MODEL}", "{" + MODEL + "}")
    return Query(" ".join(expr.split()), legend)


ROWS: tuple[Row, ...] = (
    Row(
        "Edge (what apps see)",
        (
            Panel(
                "Availability (non-5xx answers)",
                (
                    _q(
                        """1 - (sum(rate(outpost_edge_requests_total{status=~"5.."}[RATE]))
                        or vector(0)) / sum(rate(outpost_edge_requests_total[RATE]))"""
                    ),
                ),
                unit="percentunit",
                kind="stat",
                width=4,
                thresholds=((None, "red"), (0.99, "orange"), (0.999, "green")),
            ),
            Panel(
                "Cache hit ratio",
                (
                    _q(
                        """(sum(rate(outpost_edge_cache_total{result="HIT"}[RATE])) or vector(0))
                        / sum(rate(outpost_edge_cache_total{result!="BYPASS"}[RATE]))"""
                    ),
                ),
                unit="percentunit",
                kind="stat",
                width=4,
                description="HIT among cacheable lookups (BYPASS: not cacheable).",
            ),
            Panel(
                "Requests by status",
                (
                    _q(
                        "sum by (status) (rate(outpost_edge_requests_total[RATE]))",
                        "{{status}}",
                    ),
                ),
                unit="reqps",
                width=8,
            ),
            Panel(
                "Cache results",
                (
                    _q(
                        "sum by (result) (rate(outpost_edge_cache_total[RATE]))",
                        "{{result}}",
                    ),
                ),
                unit="reqps",
                width=8,
            ),
            Panel(
                "Origin attempts by outcome",
                (
                    _q(
                        "sum by (outcome) (rate(outpost_edge_origin_attempts_total[RATE]))",
                        "{{outcome}}",
                    ),
                    _q("sum(rate(outpost_edge_retries_total[RATE]))", "retries"),
                ),
                unit="reqps",
            ),
            Panel(
                "Refused at the edge",
                (
                    _q(
                        "sum by (route) (rate(outpost_edge_rate_limited_total[RATE]))",
                        "rate limited {{route}}",
                    ),
                    _q(
                        "sum by (status) (rate(outpost_edge_auth_failures_total[RATE]))",
                        "auth {{status}}",
                    ),
                ),
                unit="reqps",
            ),
            Panel(
                "Origin ejections",
                (
                    _q(
                        "sum by (origin) (increase(outpost_edge_ejections_total[RATE]))",
                        "{{origin}}",
                    ),
                ),
                description="Passive ejections after consecutive failures.",
            ),
        ),
    ),
    Row(
        "Origins and models",
        (
            Panel(
                "Origin availability",
                (
                    _q(
                        """1 - (sum(rate(outpost_origin_requests_total{status=~"5.."}[RATE]))
                        or vector(0)) / sum(rate(outpost_origin_requests_total[RATE]))"""
                    ),
                ),
                unit="percentunit",
                kind="stat",
                width=4,
                thresholds=((None, "red"), (0.99, "orange"), (0.999, "green")),
            ),
            Panel(
                "Origins up",
                (_q('sum(up{job="outpost-origin"})'),),
                kind="stat",
                width=4,
                thresholds=((None, "red"), (1, "green")),
            ),
            Panel(
                "Latency by model (p50, p99)",
                (
                    _q(
                        """histogram_quantile(0.99, sum by (le, model)
                        (rate(outpost_origin_model_request_duration_seconds_bucket{MODEL}[RATE])))""",
                        "p99 {{model}}",
                    ),
                    _q(
                        """histogram_quantile(0.5, sum by (le, model)
                        (rate(outpost_origin_model_request_duration_seconds_bucket{MODEL}[RATE])))""",
                        "p50 {{model}}",
                    ),
                ),
                unit="s",
                width=16,
            ),
            Panel(
                "Requests by status",
                (
                    _q(
                        "sum by (status) (rate(outpost_origin_requests_total[RATE]))",
                        "{{status}}",
                    ),
                ),
                unit="reqps",
            ),
            Panel(
                "Queue saturation by model",
                (
                    _q(
                        """max by (model) (outpost_origin_queue_size{MODEL}
                        / outpost_origin_queue_capacity{MODEL})""",
                        "{{model}}",
                    ),
                ),
                unit="percentunit",
                description="Fullest replica's queue; at 100% it answers 429.",
                thresholds=((None, "green"), (0.8, "red")),
            ),
            Panel(
                "429 (queue full) by model",
                (
                    _q(
                        """sum by (model)
                        (rate(outpost_origin_rejected_requests_total{MODEL}[RATE]))""",
                        "{{model}}",
                    ),
                ),
                unit="reqps",
            ),
            Panel(
                "Inputs inferred by model version",
                (
                    _q(
                        """sum by (model, version)
                        (rate(outpost_origin_inference_inputs_total{MODEL}[RATE]))""",
                        "{{model}} v{{version}}",
                    ),
                ),
                unit="short",
                description="Text inputs (or tensor requests) per second.",
            ),
            Panel(
                "Mean batch size by model",
                (
                    _q(
                        """sum by (model) (rate(outpost_origin_batch_size_sum{MODEL}[RATE]))
                        / sum by (model) (rate(outpost_origin_batch_size_count{MODEL}[RATE]))""",
                        "{{model}}",
                    ),
                ),
            ),
            Panel(
                "Engine run p99 by model",
                (
                    _q(
                        """histogram_quantile(0.99, sum by (le, model)
                        (rate(outpost_origin_inference_duration_seconds_bucket{MODEL}[RATE])))""",
                        "{{model}}",
                    ),
                ),
                unit="s",
                description="One batched ONNX Runtime call.",
            ),
        ),
    ),
    Row(
        "Vault and tokens",
        (
            Panel(
                "Vault reachable",
                (_q("min(outpost_vault_up)"),),
                kind="stat",
                width=4,
                thresholds=((None, "red"), (1, "green")),
                description="0 while any origin cannot refresh from Vault.",
            ),
            Panel(
                "Oldest secrets snapshot",
                (_q("max(time() - outpost_secrets_snapshot_timestamp_seconds)"),),
                unit="s",
                kind="stat",
                width=4,
                thresholds=((None, "green"), (600, "orange"), (1800, "red")),
            ),
            Panel(
                "Tokens issued by grant",
                (
                    _q(
                        "sum by (grant) (rate(outpost_tokens_issued_total[RATE]))",
                        "{{grant}}",
                    ),
                ),
                unit="reqps",
            ),
            Panel(
                "Token errors",
                (
                    _q(
                        "sum by (error) (rate(outpost_token_errors_total[RATE]))",
                        "{{error}}",
                    ),
                ),
                unit="reqps",
                description="`unavailable`: Vault transit could not sign.",
            ),
        ),
    ),
)


def _thresholds(panel: Panel) -> dict[str, Any]:
    steps = panel.thresholds or ((None, "green"),)
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in steps]}


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "datasource": DATASOURCE,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {
            "defaults": {"unit": panel.unit, "thresholds": _thresholds(panel)},
            "overrides": [],
        },
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": DATASOURCE,
                "expr": q.expr,
                "legendFormat": q.legend or "__auto",
                "range": True,
            }
            for i, q in enumerate(panel.queries)
        ],
    }
    if panel.description:
        out["description"] = panel.description
    if panel.kind == "stat":
        out["options"] = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
        }
    else:
        out["options"] = {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
        out["fieldConfig"]["defaults"]["custom"] = {"lineWidth": 1, "fillOpacity": 10}
    out.update(panel.extra)
    return out


def build() -> dict[str, Any]:
    """The dashboard as Grafana JSON (rows laid out left to right, wrapping at 24 columns)."""
    panels: list[dict[str, Any]] = []
    y = 0
    next_id = 1
    for row in ROWS:
        panels.append(
            {
                "id": next_id,
                "type": "row",
                "title": row.title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        next_id += 1
        y += 1
        x, line_height = 0, 0
        for panel in row.panels:
            if x + panel.width > 24:
                x, y, line_height = 0, y + line_height, 0
            panels.append(_panel_json(panel, next_id, x, y))
            next_id += 1
            x += panel.width
            line_height = max(line_height, panel.height)
        y += line_height
    return {
        "uid": UID,
        "title": "Outpost: edge and origins",
        "description": "Generated by outpost/monitoring/dashboard.py; edit that, not this file.",
        "tags": ["outpost"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "annotations": {"list": []},
        "links": [],
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                },
                {
                    "name": "model",
                    "label": "Model",
                    "type": "query",
                    "datasource": DATASOURCE,
                    "query": {
                        "query": "label_values(outpost_origin_queue_capacity, model)",
                        "refId": "model",
                    },
                    "definition": "label_values(outpost_origin_queue_capacity, model)",
                    "refresh": 2,
                    "includeAll": True,
                    "allValue": ".*",
                    "multi": True,
                    "current": {"text": "All", "value": "$__all"},
                    "hide": 0,
                },
            ]
        },
        "panels": panels,
    }


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m outpost.monitoring.dashboard")
    parser.add_argument("--check", action="store_true", help="fail if the file is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = DASHBOARD_FILE.read_text() if DASHBOARD_FILE.exists() else ""
        if current != text:
            print(f"{DASHBOARD_FILE} is out of date: run python -m outpost.monitoring.dashboard")
            return 1
        return 0
    DASHBOARD_FILE.parent.mkdir(parents=True, exist_ok=True)
    DASHBOARD_FILE.write_text(text)
    print(f"wrote {DASHBOARD_FILE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
