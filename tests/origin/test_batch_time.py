"""The learned batch time behind `max_batch_ms`: a fixed part plus a time per unit of work,
fitted to recent batches, with a margin for how far its predictions have been off."""

from __future__ import annotations

import random

import pytest

from origin.engine.batch_time import MARGIN, BatchTimes


def test_nothing_is_planned_before_a_batch_ran() -> None:
    assert BatchTimes().most_work(0.1) is None


def test_batches_of_one_size_give_the_average_time_per_unit() -> None:
    times = BatchTimes()
    for _ in range(5):
        times.observe(500, 0.080)
    assert times.fit() == (0.0, pytest.approx(0.080 / 500))
    assert times.error == pytest.approx(0)
    assert times.most_work(0.100) == pytest.approx(625)


def test_batches_of_several_sizes_separate_the_fixed_part() -> None:
    times = BatchTimes()
    for work in (15, 500, 120, 480, 30, 510) * 5:
        times.observe(work, 0.005 + 0.00016 * work)
    fixed, per_unit = times.fit()
    assert fixed == pytest.approx(0.005) and per_unit == pytest.approx(0.00016)
    # Early predictions (the average, before sizes varied) were off; later ones exact.
    assert times.error < 0.05
    assert times.most_work(0.100) == pytest.approx(
        (0.100 / (1 + MARGIN * times.error) - 0.005) / 0.00016
    )


def test_a_noisy_cpu_leaves_a_margin_of_twice_the_typical_error() -> None:
    """Batches running 10% slower or faster than predicted: plan for 20% slower."""
    rng = random.Random(1)
    times = BatchTimes()
    for _ in range(300):
        work = rng.choice((100, 300, 500))
        times.observe(work, (0.005 + 0.00016 * work) * (1 + rng.gauss(0, 0.10)))
    assert 0.07 < times.error < 0.14
    fixed, per_unit = times.fit()
    planned = times.most_work(0.100)
    assert planned == pytest.approx((0.100 / (1 + MARGIN * times.error) - fixed) / per_unit)
    assert 350 < planned < 0.9 * 594  # a quiet CPU: (0.100 - 0.005) / 0.00016 = 594


def test_recent_batches_count_most() -> None:
    """The CPU got twice as slow: the plan shrinks at once, and settles at half."""
    times = BatchTimes()
    for _ in range(50):
        times.observe(500, 0.080)
    before = times.most_work(0.100)
    times.observe(500, 0.160)
    assert times.most_work(0.100) < 0.7 * before
    for _ in range(150):
        times.observe(500, 0.160)
    assert times.most_work(0.100) == pytest.approx(before / 2, rel=0.01)


def test_a_limit_shorter_than_the_fixed_part_plans_only_the_first_item() -> None:
    times = BatchTimes()
    for work in (10, 20, 10, 20, 10, 20):
        times.observe(work, 0.050 + 0.001 * work)
    assert times.most_work(0.040) == 0
