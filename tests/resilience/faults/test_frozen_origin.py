"""Freeze an origin (SIGSTOP) under load: its requests are answered by the other origin, none
waits for the freeze, the frozen origin is ejected, and after it thaws (SIGCONT) the healthy
origin is never ejected for the connections the freeze left stale."""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

import httpx

from tests.edge.conftest import Issuer, edge_metric, start_edge
from tests.origin.conftest import OriginProcess
from tests.resilience.conftest import EMB, edge_settings, make_repo
from tests.resilience.faults.load import Load

PAUSE = 8.0  # seconds the origin stays frozen
# The bound stated for every request: far below the pause (hedges answer within a few hundred
# milliseconds on this loaded 2-core machine; the figures are in bench/, not asserted here).
BOUND = PAUSE / 4


def test_a_frozen_origin_under_load_fails_nothing_and_holds_no_request(
    tiny_src: Path, issuer: Issuer, res_tmp: Path
) -> None:
    repo = make_repo(tiny_src, res_tmp / "frozen-models")
    origins = [OriginProcess(repo, res_tmp / f"frozen-origin-{i}.log").start() for i in range(2)]
    edge = start_edge(edge_settings(issuer, [o.url for o in origins]), res_tmp)
    auth = {"authorization": f"Bearer {issuer.token('ed-1')}"}

    def send(client: httpx.Client, n: int) -> httpx.Response:
        body = {"model": EMB, "input": f"frozen {uuid.uuid4().hex}"}  # every one a miss
        return client.post(edge.url + "/v1/embeddings", json=body, headers=auth)

    frozen = origins[0].proc
    assert frozen is not None
    try:
        with Load(send, workers=8) as load:
            load.wait_for(80)  # the edge learns the model's latency
            before = len(load.latencies)
            frozen.send_signal(signal.SIGSTOP)
            time.sleep(PAUSE)
            frozen.send_signal(signal.SIGCONT)
            during = load.latencies[before:]
            load.wait_for(150)  # after the thaw: stale connections, readmission
        assert load.failures == [], load.failures[:5]
        assert len(during) >= 20
        ordered = sorted(during)
        p99 = ordered[int(0.99 * (len(ordered) - 1))]
        print(
            f"during the freeze: {len(during)} requests, p99 {p99:.3f} s, max {ordered[-1]:.3f} s"
        )
        assert ordered[-1] < BOUND
        assert edge_metric(edge, "outpost_edge_ejections_total", origin=origins[0].url) >= 1
        assert edge_metric(edge, "outpost_edge_ejections_total", origin=origins[1].url) == 0
        assert edge_metric(edge, "outpost_edge_hedges_total") >= 1
    finally:
        if frozen.poll() is None:
            frozen.send_signal(signal.SIGCONT)
        edge.stop()
        for o in origins:
            o.stop()
