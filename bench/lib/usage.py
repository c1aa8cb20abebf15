"""What server processes use while a benchmark drives them: CPU time per request and RSS.

CPU time per request moves far less with other load on a shared machine than requests/s do (the
work each request costs stays; the share of the cores it gets does not), so benchmarks report it
beside throughput. Read `cpu_seconds` before and after a window, subtract, and divide with
`cpu_per_request`. Each reading covers a process and all its descendants.
"""

from __future__ import annotations

import os
import resource
import threading
import time
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


def machine_ticks() -> list[int]:
    """The machine's CPU ticks so far (/proc/stat): user nice system idle iowait irq softirq
    steal."""
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:9]]


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) each thread of `pid` has used so far."""
    return {t.id: t.user_time + t.system_time for t in psutil.Process(pid).threads()}


def _children_cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime


class CoreSplit:
    """Where the machine's cores go over a window: a server's main thread (an asyncio server's
    event loop), its other threads (its engine's), a load generator this process runs, and the
    idle and stolen cores; what is left is the rest of the machine.

    Call `before_load()` before starting the load generator, `start(pid)` when its measured
    window starts (after its warm-up), and `cores()` once it has been waited for."""

    def __init__(self, server_pid: int) -> None:
        self.pid = server_pid
        self._children = 0.0
        self._start: tuple[dict[int, float], float, list[int], float] | None = None

    def before_load(self) -> None:
        self._children = _children_cpu()

    def start(self, load_pid: int) -> None:
        t = psutil.Process(load_pid).cpu_times()
        self._start = (
            thread_cpu(self.pid),
            t.user + t.system,
            machine_ticks(),
            time.perf_counter(),
        )

    def cores(self) -> dict[str, float]:
        """Cores used in the window, by part (rounded to 0.001)."""
        assert self._start is not None, "start() first"
        threads0, load0, ticks0, t0 = self._start
        threads1, ticks1, wall = thread_cpu(self.pid), machine_ticks(), time.perf_counter() - t0
        main = threads1.get(self.pid, 0.0) - threads0.get(self.pid, 0.0)
        rest = sum(c - threads0.get(tid, 0.0) for tid, c in threads1.items() if tid != self.pid)
        load = _children_cpu() - self._children - load0
        ticks = [b - a for a, b in zip(ticks0, ticks1, strict=True)]
        ncpu = os.cpu_count() or 1
        per_tick = ncpu / max(sum(ticks), 1)
        used = {
            "server other threads": rest / wall,
            "server main thread": main / wall,
            "load generator": load / wall,
            "idle": ticks[3] * per_tick,
            "steal": ticks[7] * per_tick,
        }
        used["rest of the machine"] = ncpu - sum(used.values())
        return {k: round(v, 3) for k, v in used.items()}
