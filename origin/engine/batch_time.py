"""How long a batch takes, learned from the batches that ran: the batcher's `max_batch_ms` cap.

A batch's time is modelled as `fixed + per_unit x work` (work: padded tokens, or items for models
that do not pad), fitted by least squares to recent batches, each weighing less as newer ones
arrive. Each batch is also compared with what the fit predicted for it before it ran; a CPU
shared with other work slows a batch in proportion to its length, so the typical relative error
of those predictions is the margin: the largest batch planned for a time limit is the one whose
predicted time, made longer by twice that error, stays within the limit. Until batches of
different sizes have run, the fit is the average time per unit of work (no fixed part), which
overestimates small batches' cost per unit, so the first caps err on the short side.
"""

from __future__ import annotations

import math

# Weight of past batches after each new one: about the last ten batches count.
DECAY = 0.9
# How many typical relative errors of the predictions a planned batch keeps in hand.
MARGIN = 2.0


class BatchTimes:
    """Decayed least-squares fit of batch seconds against batch work, and its prediction error."""

    __slots__ = ("_errors", "_n", "_predicted", "_t", "_w", "_wt", "_ww")

    def __init__(self) -> None:
        self._n = self._w = self._t = self._ww = self._wt = 0.0
        self._predicted = self._errors = 0.0  # decayed count and sum of squared relative errors

    def observe(self, work: float, seconds: float) -> None:
        """One batch ran: `work` units in `seconds`."""
        k = DECAY
        fitted = self.fit()
        if fitted is not None:
            predicted = fitted[0] + fitted[1] * work
            if predicted > 0:
                self._predicted = k * self._predicted + 1
                self._errors = k * self._errors + (seconds / predicted - 1) ** 2
        self._n = k * self._n + 1
        self._w = k * self._w + work
        self._t = k * self._t + seconds
        self._ww = k * self._ww + work * work
        self._wt = k * self._wt + work * seconds

    def fit(self) -> tuple[float, float] | None:
        """(fixed seconds, seconds per unit of work); None before a batch ran."""
        if self._n <= 0 or self._w <= 0:
            return None
        n = self._n
        mean_w, mean_t = self._w / n, self._t / n
        var_w = self._ww / n - mean_w * mean_w
        cov = self._wt / n - mean_w * mean_t
        if var_w > (0.05 * mean_w) ** 2 and cov > 0:  # sizes varied enough to fit a slope
            slope = cov / var_w
            intercept = mean_t - slope * mean_w
            if intercept >= 0:
                return intercept, slope
        return 0.0, mean_t / mean_w

    @property
    def error(self) -> float:
        """Typical relative error of the predictions so far (root mean square; 0 before any)."""
        return math.sqrt(self._errors / self._predicted) if self._predicted > 0 else 0.0

    def most_work(self, seconds: float) -> float | None:
        """The most work a batch should hold to end within `seconds` (0: only its first
        item); None before any batch ran."""
        fitted = self.fit()
        if fitted is None or fitted[1] <= 0:
            return None
        fixed, per_unit = fitted
        return max(0.0, (seconds / (1 + MARGIN * self.error) - fixed) / per_unit)
