"""Plain counters kept by the edge core; the local platform exports them to Prometheus."""

from __future__ import annotations

from collections import defaultdict

# name -> (help, label names)
METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "outpost_edge_requests_total": ("Requests answered by the edge.", ("route", "status")),
    "outpost_edge_cache_total": ("Cache outcomes.", ("result",)),
    "outpost_edge_origin_attempts_total": ("Attempts sent to origins.", ("origin", "outcome")),
    "outpost_edge_retries_total": ("Retries and hedges of idempotent requests.", ()),
    "outpost_edge_hedges_total": (
        "Idempotent requests also sent to a second origin after the hedge delay.",
        (),
    ),
    "outpost_edge_ejections_total": ("Passive ejections of an origin.", ("origin",)),
    "outpost_edge_auth_failures_total": ("Rejected tokens.", ("status",)),
    "outpost_edge_rate_limited_total": ("Requests answered 429 by the edge.", ("route",)),
    "outpost_edge_attestation_total": (
        "App attestation checks, by route class, mode and result.",
        ("route_class", "mode", "result"),
    ),
    "outpost_edge_quota_store_errors_total": (
        "Quota checks the shared store could not answer, by the fail mode applied.",
        ("mode",),
    ),
    "outpost_edge_refused_total": (
        "Requests the local server refused before routing (HTTP limits and timeouts).",
        ("reason",),
    ),
}


class Stats:
    """label-tuple counters per metric name."""

    def __init__(self) -> None:
        self.counters: dict[str, defaultdict[tuple[str, ...], float]] = {
            name: defaultdict(float) for name in METRICS
        }

    def inc(self, name: str, *labels: str, value: float = 1.0) -> None:
        self.counters[name][labels] += value
