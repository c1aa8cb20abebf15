"""A model's batches as an origin's /metrics counts them, read before and after a window."""

from __future__ import annotations

import re
import urllib.request
from typing import Any


def counters(url: str, model: str) -> dict[Any, float]:
    """The model's batch counters from the origin's /metrics: histogram sums and counts by
    name, and the batch time buckets by their bound (seconds)."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out: dict[Any, float] = {}
    label = 'model="' + re.escape(model) + '"'
    for name in ("batch_size", "inference_duration_seconds"):
        for kind in ("sum", "count"):
            m = re.search(rf"^outpost_origin_{name}_{kind}{{{label}}} (\S+)$", text, re.M)
            out[f"{name}_{kind}"] = float(m.group(1)) if m else 0.0
    bucket = rf'^outpost_origin_inference_duration_seconds_bucket{{le="([^"]+)",{label}}} (\S+)$'
    for le, value in re.findall(bucket, text, re.M):
        out[float(le)] = float(value)
    return out


def stats(
    before: dict[Any, float], after: dict[Any, float], max_batch_ms: float | None = None
) -> dict[str, Any]:
    """Batches between two readings of `counters`: count, mean size and time, and (with
    `max_batch_ms`) the share of them longer than the smallest histogram bound >= it."""

    def delta(key: Any) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    count = delta("inference_duration_seconds_count")
    if not count:
        return {"batches": 0}
    out: dict[str, Any] = {
        "batches": int(count),
        "mean_size": round(delta("batch_size_sum") / count, 2),
        "mean_ms": round(delta("inference_duration_seconds_sum") / count * 1000, 2),
    }
    if max_batch_ms is not None:
        bounds = sorted(k for k in after if isinstance(k, float) and k != float("inf"))
        bound = next((b for b in bounds if b >= max_batch_ms / 1000), None)
        if bound is not None:
            out[f"share_over_{bound * 1000:g}_ms"] = round(1 - delta(bound) / count, 4)
    return out
