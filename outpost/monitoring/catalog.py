"""The metrics the code registers: the one list that rules, dashboards and docs are checked against.

Origin metrics are read from a real origin app's Prometheus registry (Vault and identity
metrics included), edge metrics from `edge.core.stats.METRICS`. Renaming a metric in the code
changes this list, so a rule or dashboard query that still names the old one fails its test.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Series a Prometheus scrape adds on its own (https://prometheus.io/docs/concepts/jobs_instances/).
SCRAPE_SERIES = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "gauge": ("",),
    "info": ("_info",),
}


@dataclass(frozen=True)
class Metric:
    """One metric family: its exposed name (counters with `_total`), type, labels and help."""

    tier: str
    name: str
    type: str
    labels: tuple[str, ...]
    help: str

    @property
    def series(self) -> tuple[str, ...]:
        """The series names a scrape of this family can contain."""
        base = self.name.removesuffix("_total") if self.type == "counter" else self.name
        return tuple(base + suffix for suffix in _SUFFIXES.get(self.type, ("",)))


def _collectors(registry: Any) -> Iterator[Any]:
    from prometheus_client import CollectorRegistry

    for collector in list(registry._collector_to_names):
        if isinstance(collector, CollectorRegistry):
            yield from _collectors(collector)
        else:
            yield collector


def origin_metrics() -> list[Metric]:
    """Every metric the origin's /metrics exposes, read from the app's real registry."""
    from origin.identity.component import build_origin_app
    from origin.settings import OriginSettings

    with tempfile.TemporaryDirectory() as empty:
        app = build_origin_app(OriginSettings(models_dir=Path(empty), watch=False))
    out = []
    for collector in _collectors(app.state.metrics.registry):
        labels = tuple(getattr(collector, "_labelnames", ()))
        for family in collector.describe():
            name = family.name + "_total" if family.type == "counter" else family.name
            out.append(Metric("origin", name, family.type, labels, family.documentation))
    return out


def edge_metrics() -> list[Metric]:
    """Every metric the local edge's /metrics exposes (`edge.core.stats.METRICS`, all counters)."""
    from edge.core.stats import METRICS

    return [
        Metric("edge", name, "counter", labels, text) for name, (text, labels) in METRICS.items()
    ]


def all_metrics() -> list[Metric]:
    return [*origin_metrics(), *edge_metrics()]


def series_names() -> frozenset[str]:
    """Every series name a scrape of an origin or an edge can hold, plus Prometheus's own."""
    return frozenset(s for m in all_metrics() for s in m.series) | SCRAPE_SERIES
