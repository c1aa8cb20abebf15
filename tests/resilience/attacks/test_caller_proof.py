"""Origins trust only their callers, on real processes: real OpenBao holds the caller key, a
real origin requires proofs (HTTP and gRPC), a real edge signs with the key it was handed in
its environment. A caller that reaches the origin directly gets 401 (UNAUTHENTICATED over
gRPC), whatever proof it makes up; the edge's requests are served, for the subject it verified;
the registration caps count the address the edge proved, not a header a client chose."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
import tritonclient.grpc as grpcclient
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.utils import InferenceServerException

from outpost import devicekey
from outpost.devicekey import DeviceKey
from tests.resilience.conftest import (
    EMB,
    IRIS,
    DevVault,
    OriginProcess,
    ProvenStack,
    make_repo,
    proof_headers,
    proven_origin,
)

EMBED = {"model": EMB, "input": "who is asking?"}


def assert_refused(resp: httpx.Response) -> None:
    assert resp.status_code == 401, (resp.status_code, resp.text[:300])
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["type"] == "urn:outpost:problem:caller-unproven"


def test_a_direct_call_is_refused_and_the_edges_is_served(
    proven_stack: ProvenStack, http: httpx.Client
) -> None:
    origin = proven_stack.origin.url
    assert_refused(http.post(origin + "/v1/embeddings", json=EMBED))
    assert_refused(http.get(origin + "/v1/models"))
    assert_refused(http.get(f"{origin}/v2/models/{IRIS}"))
    # A client's bearer token is no proof: the origin does not verify tokens, the edge does.
    assert_refused(http.post(origin + "/v1/embeddings", json=EMBED, headers=proven_stack.auth()))
    through = http.post(
        proven_stack.edge.url + "/v1/embeddings", json=EMBED, headers=proven_stack.auth()
    )
    assert through.status_code == 200, through.text
    assert through.json()["model"] == EMB
    # The origin's log names the subject the edge proved.
    deadline = time.monotonic() + 5
    while "caller=sub:user-1" not in proven_stack.origin.logs():
        assert time.monotonic() < deadline, proven_stack.origin.logs()[-2000:]
        time.sleep(0.1)


@pytest.mark.parametrize(
    "case", ["stale", "future", "wrong-key", "unknown-kid", "method", "target", "subject"]
)
def test_made_up_or_tampered_proofs_are_refused(
    proven_stack: ProvenStack, http: httpx.Client, case: str
) -> None:
    key = proven_stack.key()
    url = proven_stack.origin.url + "/v1/embeddings"
    good = proof_headers(key, "POST", "/v1/embeddings")
    assert http.post(url, json=EMBED, headers=good).status_code == 200  # the control
    if case == "stale":
        headers = proof_headers(key, "POST", "/v1/embeddings", t=time.time() - 3600)
    elif case == "future":
        headers = proof_headers(key, "POST", "/v1/embeddings", t=time.time() + 3600)
    elif case == "wrong-key":
        headers = proof_headers((key[0], b"k" * 32), "POST", "/v1/embeddings")
    elif case == "unknown-kid":
        headers = proof_headers(("made-up", key[1]), "POST", "/v1/embeddings")
    elif case == "method":
        headers = proof_headers(key, "GET", "/v1/embeddings")
    elif case == "target":  # a proof for one endpoint replayed on another
        headers = proof_headers(key, "POST", "/v1/classifications")
    else:  # another subject's field pasted into a valid proof
        fields = good["x-outpost-caller"].split("; ")
        other = proof_headers(key, "POST", "/v1/embeddings", subject="sub:admin")
        fields[3] = other["x-outpost-caller"].split("; ")[3]
        headers = {**good, "x-outpost-caller": "; ".join(fields)}
    assert_refused(http.post(url, json=EMBED, headers=headers))


def test_probes_and_public_keys_are_open_and_the_rest_on_the_internal_listener(
    proven_stack: ProvenStack, http: httpx.Client
) -> None:
    origin, admin = proven_stack.origin.url, proven_stack.origin.admin_url  # type: ignore[attr-defined]
    for path in ("/v2/health/live", "/v2/health/ready", "/.well-known/jwks.json"):
        assert http.get(origin + path).status_code == 200, path
    discovery = http.get(origin + "/.well-known/openid-configuration")
    assert discovery.status_code == 200 and discovery.json()["issuer"] == origin
    for path in ("/metrics", "/healthz", "/openapi.json", "/docs"):
        assert_refused(http.get(origin + path))
    metrics = http.get(admin + "/metrics")
    assert metrics.status_code == 200
    assert 'outpost_origin_caller_refused_total{reason="missing"}' in metrics.text
    assert http.get(admin + "/healthz").json()["ready"] is True
    assert http.post(admin + "/v1/embeddings", json=EMBED).status_code == 404


def _grpc_infer(target: str, headers: dict[str, str] | None = None) -> object:
    import numpy as np

    with grpcclient.InferenceServerClient(target) as client:
        tensor = grpcclient.InferInput("float_input", [1, 4], "FP32")
        tensor.set_data_from_numpy(np.ones((1, 4), dtype=np.float32))
        return client.infer(IRIS, [tensor], headers=headers)


def test_grpc_calls_need_the_same_proof(proven_stack: ProvenStack) -> None:
    target = proven_stack.origin.grpc_target
    assert target is not None
    with pytest.raises(InferenceServerException) as refused:
        _grpc_infer(target)
    assert "UNAUTHENTICATED" in str(refused.value.status())
    method = "/inference.GRPCInferenceService/ModelInfer"
    with pytest.raises(InferenceServerException) as forged:
        _grpc_infer(target, proof_headers((proven_stack.key()[0], b"x" * 32), "POST", method))
    assert "UNAUTHENTICATED" in str(forged.value.status())
    answer = _grpc_infer(target, proof_headers(proven_stack.key(), "POST", method))
    assert answer.get_response().model_name == IRIS  # type: ignore[attr-defined]
    # Kubernetes' gRPC probes (the standard health service) need no proof.
    with grpc.insecure_channel(target) as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert status.status == health_pb2.HealthCheckResponse.SERVING


@pytest.fixture
def capped_origin(dev_vault: DevVault, tiny_src: Path, tmp_path: Path) -> Iterator[OriginProcess]:
    origin = proven_origin(
        dev_vault,
        make_repo(tiny_src, tmp_path / "models"),
        tmp_path / "origin.log",
        OUTPOST_IDENTITY_REGISTER_PER_ADDRESS="2",
        OUTPOST_IDENTITY_REGISTER_ADDRESS_WINDOW="3600",
    )
    yield origin
    origin.stop()


def test_registration_caps_count_the_address_the_edge_proved(
    capped_origin: OriginProcess, dev_vault: DevVault
) -> None:
    """A forged X-Forwarded-For (uvicorn believes it from loopback) buys no new bucket: the
    address counted is the one in the edge's proof."""
    from tests.resilience.conftest import current_key

    key, url = current_key(dev_vault), capped_origin.url + "/oauth/token"

    def register(proven_ip: str, claimed_ip: str) -> int:
        headers = {
            **proof_headers(key, "POST", "/oauth/token", subject=f"ip:{proven_ip}"),
            "x-forwarded-for": claimed_ip,
        }
        with httpx.Client(timeout=15) as client:
            resp = devicekey.register(
                client, url, dev_vault.boot.demo_api_key or "", DeviceKey(), headers=headers
            )
        return resp.status_code

    codes = [register("198.51.100.20", f"203.0.113.{i}") for i in range(3)]
    assert codes == [200, 200, 429]
    assert register("198.51.100.21", "198.51.100.20") == 200
    metrics = httpx.get(capped_origin.admin_url + "/metrics").text  # type: ignore[attr-defined]
    assert 'outpost_registrations_limited_total{cap="address"} 1.0' in metrics


def test_the_key_never_shows_in_logs_or_answers(
    proven_stack: ProvenStack, http: httpx.Client
) -> None:
    import base64

    encoded = base64.b64encode(proven_stack.key()[1]).decode()
    answers = [
        http.get(proven_stack.origin.admin_url + "/healthz").text,  # type: ignore[attr-defined]
        http.get(proven_stack.origin.admin_url + "/metrics").text,  # type: ignore[attr-defined]
        http.get(proven_stack.edge.admin_url + "/healthz").text,
        http.get(proven_stack.edge.admin_url + "/metrics").text,
        json.dumps(http.post(proven_stack.origin.url + "/v1/embeddings", json=EMBED).json()),
    ]
    logs = [proven_stack.origin.logs(), proven_stack.edge.output()]
    for text in answers + logs:
        assert encoded not in text and encoded[:16] not in text
