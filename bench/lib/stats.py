"""The one percentile function of bench/, with one convention.

`percentile(values, q)` interpolates linearly between the two closest ranks: the value at rank
`(n - 1) * q / 100` of the sorted values, counting from 0. It is numpy's default
(`np.percentile`), `statistics.quantiles(..., method="inclusive")` and a spreadsheet's
PERCENTILE.INC; `percentile(v, 50)` is `statistics.median(v)`. Empty input gives NaN.
"""

from __future__ import annotations

import math
from collections.abc import Iterable


def percentile(values: Iterable[float], q: float) -> float:
    """The `q`-th percentile (0 <= q <= 100) of `values` (see the module's convention)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0..100")
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
