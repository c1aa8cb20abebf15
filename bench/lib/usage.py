"""What server processes use while a benchmark drives them: CPU time per request and RSS.

CPU time per request moves far less with other load on a shared machine than requests/s do (the
work each request costs stays; the share of the cores it gets does not), so benchmarks report it
beside throughput. Read `cpu_seconds` before and after a window, subtract, and divide with
`cpu_per_request`. Each reading covers a process and all its descendants.
"""

from __future__ import annotations

import resource
import threading
from collections.abc import Mapping
from contextlib import suppress

import psutil

# The name `cpu_seconds` gives the load generators this process started and has waited for.
LOAD_GENERATOR = "load generator"


def tree(proc: psutil.Process) -> list[psutil.Process]:
    """`proc` and its descendants alive now (none if `proc` is gone)."""
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return []


def cpu_seconds(
    procs: Mapping[str, psutil.Process], children: bool = False
) -> dict[str, tuple[float, float]]:
    """(user, system) CPU seconds each named process and its descendants have used so far; with
    `children`, also the finished child processes of this one (`LOAD_GENERATOR`)."""
    used = {}
    for name, proc in procs.items():
        user = system = 0.0
        for p in tree(proc):
            with suppress(psutil.Error):
                t = p.cpu_times()
                user += t.user
                system += t.system
        used[name] = (user, system)
    if children:
        own = resource.getrusage(resource.RUSAGE_CHILDREN)  # load generators, once waited for
        used[LOAD_GENERATOR] = (own.ru_utime, own.ru_stime)
    return used


def spent(
    before: Mapping[str, tuple[float, float]], after: Mapping[str, tuple[float, float]]
) -> dict[str, float]:
    """CPU seconds (user + system) each process used between two `cpu_seconds` readings."""
    return {name: sum(after[name]) - sum(before[name]) for name in after}


def cpu_per_request(
    seconds: Mapping[str, float], requests: float, ndigits: int | None = None
) -> dict[str, float]:
    """Microseconds of CPU per request for each process (0.5 µs and up), from CPU seconds;
    rounded to whole microseconds unless `ndigits` asks for decimals."""
    per = {n: s / max(requests, 1.0) * 1e6 for n, s in seconds.items()}
    return {n: round(us, ndigits) for n, us in per.items() if us >= 0.5}


def cpu_shares(seconds: Mapping[str, float]) -> dict[str, float]:
    """Each process's share of all the CPU seconds used in a window (shares of 0.5 % and up).

    Shares, not CPU per request, compare best between windows on a VM: its process CPU times
    include time the hypervisor took, which moves with requests/s; shares move far less."""
    total = sum(seconds.values()) or 1.0
    return {name: round(t / total, 3) for name, t in seconds.items() if t / total >= 0.005}


class RssSampler(threading.Thread):
    """Samples the RSS of a process and all its descendants; keeps the peak (overall and since
    `reset_window`)."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.window_peak = 0
        self._stop = threading.Event()

    def current(self) -> int:
        total = 0
        for p in tree(self.proc):
            with suppress(psutil.Error):
                total += p.memory_info().rss
        return total

    def run(self) -> None:
        while not self._stop.wait(self.interval):
            rss = self.current()
            self.peak = max(self.peak, rss)
            self.window_peak = max(self.window_peak, rss)

    def reset_window(self) -> None:
        self.window_peak = self.current()

    def stop(self) -> None:
        self._stop.set()
