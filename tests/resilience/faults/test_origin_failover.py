"""Kill origins under load: the edge routes around a dead replica without failing an idempotent
request, serves cached answers STALE once every origin is gone, and answers uncached requests
with a 502/503 problem."""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

import httpx
import yaml

from tests.edge.conftest import Issuer, start_edge
from tests.origin.conftest import OriginProcess, write_yaml
from tests.resilience.conftest import EMB, edge_settings, make_repo
from tests.resilience.faults.load import Load


def test_killing_origins_under_load(tiny_src: Path, issuer: Issuer, res_tmp: Path) -> None:
    repo = make_repo(tiny_src, res_tmp / "failover-models")
    cfg = yaml.safe_load((repo / EMB / "model.yaml").read_text())
    write_yaml(repo / EMB / "model.yaml", {**cfg, "cache_ttl_seconds": 1})
    origins = [OriginProcess(repo, res_tmp / f"failover-origin-{i}.log").start() for i in range(2)]
    edge = start_edge(
        edge_settings(issuer, [o.url for o in origins], stale_if_error_seconds=600), res_tmp
    )
    auth = {"authorization": f"Bearer {issuer.token('ed-1')}"}

    def send(client: httpx.Client, n: int) -> httpx.Response:
        # unique texts: every request really goes to an origin
        body = {"model": EMB, "input": f"failover {uuid.uuid4().hex}"}
        return client.post(edge.url + "/v1/embeddings", json=body, headers=auth)

    try:
        with httpx.Client(timeout=30) as http:
            cached = http.post(
                edge.url + "/v1/embeddings", json={"model": EMB, "input": "warm"}, headers=auth
            )
            assert cached.status_code == 200
            with Load(send, workers=3) as load:
                load.wait_for(30)
                assert origins[0].proc is not None
                origins[0].proc.send_signal(signal.SIGKILL)  # no goodbye, mid-request
                origins[0].proc.wait(10)
                load.wait_for(60)
            assert load.failures == [], load.failures[:5]
            assert load.outcomes["200"] >= 90

            origins[1].stop()  # now every origin is gone
            stale = http.post(
                edge.url + "/v1/embeddings", json={"model": EMB, "input": "warm"}, headers=auth
            )
            assert stale.status_code == 200, stale.text
            assert stale.headers["x-cache"] in {"STALE", "HIT"}
            assert stale.json()["data"] == cached.json()["data"]
            # past its 1 s freshness the same entry is served STALE, not HIT
            time.sleep(1.5)
            stale = http.post(
                edge.url + "/v1/embeddings", json={"model": EMB, "input": "warm"}, headers=auth
            )
            assert stale.status_code == 200 and stale.headers["x-cache"] == "STALE"

            fresh = http.post(
                edge.url + "/v1/embeddings",
                json={"model": EMB, "input": "never seen"},
                headers=auth,
            )
            assert fresh.status_code in {502, 503, 504}, fresh.text
            assert fresh.headers["content-type"].startswith("application/problem+json")
            assert "Traceback" not in fresh.text
    finally:
        edge.stop()
        for o in origins:
            o.stop()
