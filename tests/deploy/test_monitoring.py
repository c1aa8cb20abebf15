"""Alert/recording rules and the Grafana dashboard match the metrics the code registers.

promtool (Debian's `prometheus` package; `./dev test` installs it) checks and unit-tests the
rules. Every PromQL expression in the rules and the dashboard is parsed (promql-parser) and
each metric it names must be one the code registers (`outpost.monitoring.catalog`), a
recording rule defined next to it, or a series Prometheus adds itself (`up`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from outpost.monitoring import dashboard
from outpost.monitoring.catalog import series_names
from tests.deploy.conftest import DEPLOY

MONITORING = DEPLOY / "monitoring"
RULES = MONITORING / "rules" / "outpost.rules.yml"
RULE_TESTS = MONITORING / "tests" / "outpost.rules.test.yml"
# Grafana's variables, replaced by something PromQL accepts before parsing.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$model": "minilm"}


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, (
        "promtool is not installed: it comes with Debian's `prometheus` package, which "
        "`./dev test` installs (as root: apt-get install prometheus)"
    )
    return path


def run_promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *map(str, args)], capture_output=True, text=True, timeout=120
    )


def metric_names(expr: str) -> set[str]:
    """Every metric name a PromQL expression selects (raises on a syntax error)."""
    for var, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(var, value)
    names: set[str] = set()

    def walk(node: Any) -> None:
        if node is None:
            return
        if isinstance(node, list):
            for item in node:
                walk(item)
            return
        if type(node).__name__ == "VectorSelector":
            assert node.name, f"a selector without a metric name in {expr!r}"
            names.add(node.name)
        for attr in ("lhs", "rhs", "expr", "args", "vector_selector", "param"):
            walk(getattr(node, attr, None))

    walk(promql_parser.parse(expr))
    return names


def rule_groups() -> list[dict[str, Any]]:
    return yaml.safe_load(RULES.read_text())["groups"]


def rules() -> Iterator[dict[str, Any]]:
    for group in rule_groups():
        yield from group["rules"]


def recorded() -> set[str]:
    return {r["record"] for r in rules() if "record" in r}


def unknown_names(exprs: dict[str, str], known: frozenset[str] | set[str]) -> dict[str, set[str]]:
    """For each named expression, the metric names it uses that are not in `known`."""
    out = {}
    for where, expr in exprs.items():
        missing = metric_names(expr) - known
        if missing:
            out[where] = missing
    return out


def dashboard_queries(doc: dict[str, Any]) -> dict[str, str]:
    out = {}
    for panel in doc["panels"]:
        for target in panel.get("targets", []):
            out[f"{panel['title']} / {target['refId']}"] = target["expr"]
    for var in doc["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"]
            # label_values(metric, label): the metric must exist too.
            metric = query.removeprefix("label_values(").split(",")[0].strip()
            out[f"variable {var['name']}"] = metric
    return out


# ------------------------------------------------------------------------------ promtool
def test_rules_pass_promtool_check() -> None:
    result = run_promtool("check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass() -> None:
    result = run_promtool("test", "rules", RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_rejects_a_broken_rule_and_a_wrong_expectation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("groups:\n- name: x\n  rules:\n  - alert: Broken\n    expr: sum(rate(x[5m])\n")
    assert run_promtool("check", "rules", bad).returncode != 0
    # The shipped unit tests with one expectation changed must fail.
    (tmp_path / "rules").mkdir()
    shutil.copy(RULES, tmp_path / "rules" / RULES.name)
    (tmp_path / "tests").mkdir()
    text = RULE_TESTS.read_text().replace("value: 0.98\n", "value: 0.5\n", 1)
    assert text != RULE_TESTS.read_text()
    (tmp_path / "tests" / RULE_TESTS.name).write_text(text)
    assert run_promtool("test", "rules", tmp_path / "tests" / RULE_TESTS.name).returncode != 0


def test_example_prometheus_config_is_valid() -> None:
    result = run_promtool("check", "config", MONITORING / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------------------ rules
def test_every_rule_names_metrics_the_code_registers() -> None:
    exprs = {r.get("record") or r["alert"]: r["expr"] for r in rules()}
    assert unknown_names(exprs, series_names() | recorded()) == {}


def test_rules_cover_what_on_call_needs() -> None:
    alerts = {r["alert"]: r for r in rules() if "alert" in r}
    needed = {
        "OutpostEdgeAvailabilityLow",
        "OutpostOriginAvailabilityLow",
        "OutpostModelLatencyHigh",
        "OutpostQueueSaturated",
        "OutpostOverloaded",
        "OutpostVaultDegraded",
        "OutpostTokenSigningFailing",
        "OutpostCacheHitRatioLow",
    }
    assert needed <= set(alerts)
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"page", "ticket", "info"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
    tested = {
        a["alertname"]
        for t in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for a in t.get("alert_rule_test", [])
    }
    assert set(alerts) - {"OutpostOriginAvailabilityLow"} <= tested  # that one: negative case
    assert "OutpostOriginAvailabilityLow" in tested


# ------------------------------------------------------------------------------ dashboard
def test_dashboard_file_is_what_the_code_generates() -> None:
    assert dashboard.DASHBOARD_FILE.read_text() == dashboard.render(), (
        "run `python -m outpost.monitoring.dashboard` and commit the result"
    )


def test_every_dashboard_query_names_a_registered_metric() -> None:
    doc = json.loads(dashboard.DASHBOARD_FILE.read_text())
    queries = dashboard_queries(doc)
    assert len(queries) > 20
    assert unknown_names(queries, series_names() | recorded()) == {}


def test_renaming_a_metric_fails_the_check() -> None:
    """What the two checks above do when the code renames `outpost_origin_queue_size`."""
    renamed = set(series_names()) - {"outpost_origin_queue_size"}
    doc = json.loads(dashboard.DASHBOARD_FILE.read_text())
    missing = unknown_names(dashboard_queries(doc), renamed)
    assert missing["Queue saturation by model / A"] == {"outpost_origin_queue_size"}
    rule_exprs = {r.get("record") or r["alert"]: r["expr"] for r in rules()}
    assert unknown_names(rule_exprs, renamed | recorded())


def test_dashboard_is_well_formed_for_provisioning() -> None:
    doc = json.loads(dashboard.DASHBOARD_FILE.read_text())
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in doc["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        mine = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            refs = [t["refId"] for t in panel["targets"]]
            assert refs and len(refs) == len(set(refs)), panel["title"]
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert doc["uid"] and doc["schemaVersion"] >= 36
    provider = yaml.safe_load(
        (MONITORING / "grafana" / "provisioning" / "dashboards" / "outpost.yml").read_text()
    )
    assert provider["providers"][0]["type"] == "file"


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("rate(a_total[5m]) / on (x) group_left b", {"a_total", "b"}),
        (
            'histogram_quantile(0.9, sum by (le) (rate(h_bucket{m=~"$model"}[$__rate_interval])))',
            {"h_bucket"},
        ),
        ("time() - c", {"c"}),
        ("max_over_time(d[10m:1m] offset 5m)", {"d"}),
    ],
)
def test_metric_names_are_read_from_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_metric_names_rejects_broken_promql() -> None:
    with pytest.raises(ValueError):
        metric_names("sum(rate(x[5m])")
