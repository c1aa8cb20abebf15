"""The edge and its quota Redis started the way deploy/k8s/edge configures them: the Redis
container's options in a real redis-server, the edge container's args and environment in a real
`python -m edge`. Only what a cluster provides is swapped in: loopback addresses and free ports
for the pods' addresses and fixed ports, and a closed port for the origins' Service (no origin
runs here). The probes, the internal listener and the shared quota store then answer as the
manifests claim.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import redis as redis_client

from edge.config import load_config
from tests.conftest import free_port
from tests.deploy.conftest import (
    EDGE_K8S,
    container,
    container_env,
    documents,
    find,
    kustomize_build,
)
from tests.edge.conftest import PY, Proc, _spawn, wait_http
from tests.redis_server import RedisServer

Doc = dict[str, Any]


@pytest.fixture(scope="module")
def rendered() -> list[Doc]:
    return documents(kustomize_build(EDGE_K8S))


@pytest.fixture
def redis(rendered: list[Doc], tmp_path: Path) -> Iterator[RedisServer]:
    """redis-server with the container's own options (its port and bind made local)."""
    options = container(find("Deployment", rendered, "outpost-quota-redis"), "redis")["args"]
    server = RedisServer(tmp_path, settings=options).start()
    yield server
    server.stop()


def with_netloc(url: str, netloc: str) -> str:
    return urlunsplit(urlsplit(url)._replace(netloc=netloc))


@pytest.fixture
def edge(rendered: list[Doc], redis: RedisServer, tmp_path: Path) -> Iterator[Proc]:
    c = container(find("Deployment", rendered, "outpost-edge"), "edge")
    manifest_env = container_env(rendered, "outpost-edge", "edge")
    config = load_config(manifest_env)
    port, admin = free_port(), free_port()
    # What the cluster would provide: addresses and ports of this machine.
    local = {
        "OUTPOST_EDGE_ADMIN_HOST": "127.0.0.1",
        "OUTPOST_EDGE_ADMIN_PORT": str(admin),
        "OUTPOST_EDGE_QUOTA_REDIS_URL": with_netloc(
            config.quota_redis_url, f"127.0.0.1:{redis.port}"
        ),
        "OUTPOST_EDGE_ORIGINS": f'[{{"url": "http://127.0.0.1:{free_port()}"}}]',
    }
    assert set(local) <= set(manifest_env)
    args = list(c["args"])
    args[args.index("--host") + 1] = "127.0.0.1"
    args[args.index("--port") + 1] = str(port)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_EDGE_")}
    env.update({**manifest_env, **local})
    log = tmp_path / "edge.log"
    argv = [PY, "-m", "edge", *args, "--log-level", "warning"]
    proc = Proc(
        _spawn(argv, log, env), f"http://127.0.0.1:{port}", log, f"http://127.0.0.1:{admin}"
    )
    wait_http(proc, "/healthz", timeout=30)
    yield proc
    proc.stop()


def test_probes_and_metrics_answer_where_the_manifests_say(rendered: list[Doc], edge: Proc) -> None:
    deployment = find("Deployment", rendered, "outpost-edge")
    c = container(deployment, "edge")
    notes = deployment["spec"]["template"]["metadata"]["annotations"]
    with httpx.Client(timeout=5) as client:
        for probe in ("livenessProbe", "readinessProbe"):
            assert c[probe]["httpGet"]["port"] == "http"  # the public listener: edge.url
            assert client.get(edge.url + c[probe]["httpGet"]["path"]).status_code == 200
        # The public listener keeps metrics and origin details to itself ...
        assert client.get(edge.url + notes["prometheus.io/path"]).status_code == 404
        assert "origins" not in client.get(edge.url + "/healthz").json()
        # ... the internal one (prometheus.io/port) serves them.
        scraped = client.get(edge.admin_url + notes["prometheus.io/path"])
        assert scraped.status_code == 200 and "outpost_edge_" in scraped.text
        assert "origins" in client.get(edge.admin_url + "/healthz").json()


def quota_store_errors(client: httpx.Client, edge: Proc, mode: str) -> float:
    text = client.get(edge.admin_url + "/metrics").text
    prefix = f'outpost_edge_quota_store_errors_total{{mode="{mode}"}} '
    return sum(float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix))


def test_quotas_live_in_the_configured_redis_and_its_outage_follows_the_fail_mode(
    rendered: list[Doc], redis: RedisServer, edge: Proc
) -> None:
    """A request on an open route is charged to a bucket in Redis (one key, expiring); with
    Redis stopped the edge does what the ConfigMap's fail mode says (`local`: its own buckets,
    never a 503 for quotas)."""
    mode = load_config(container_env(rendered, "outpost-edge", "edge")).quota_fail_mode
    store = redis_client.Redis.from_url(redis.url)
    try:
        assert store.dbsize() == 0
        with httpx.Client(timeout=10) as client:
            first = client.get(edge.url + "/v2/health/live")  # open route; the origin is away
            assert first.status_code in (502, 503, 504)
            assert "ratelimit" in first.headers
            keys = store.keys()
            assert len(keys) == 1 and store.ttl(keys[0]) > 0
            redis.stop()
            during = client.get(edge.url + "/v2/health/live")
            assert mode == "local"
            assert during.json()["type"] == first.json()["type"] != "quota-unavailable"
            assert "ratelimit" in during.headers  # this replica's own bucket answered
            assert quota_store_errors(client, edge, mode) >= 1
    finally:
        store.close()
