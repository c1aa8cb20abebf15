"""Resilience fixtures: a shared real stack (two origins behind one edge, tiny ONNX models,
a token issuer on a real HTTP server), reusing the origin and edge suites' helpers; and a
proven stack (real OpenBao holding the caller key, an origin that requires caller proofs and
issues tokens, an edge signing with the key)."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from origin.caller import sign
from tests.conftest import free_port
from tests.edge.conftest import Issuer, Proc, issuer, start_edge  # noqa: F401
from tests.origin.conftest import OriginProcess, install_version, tiny_src  # noqa: F401
from tests.vault.conftest import DevVault, dev_vault  # noqa: F401
from vault import caller_key

EMB = "emb"
CLS = "cls"
IRIS = "iris"
# Generous limits for the shared edge: rate-limit tests use their own edge.
OPEN_LIMITS = {"default": {"rate": 10_000, "burst": 10_000}}


def make_repo(tiny_src: Path, dest: Path) -> Path:  # noqa: F811
    """A model repository with the tiny embeddings, classifier and tensor models."""
    install_version(tiny_src / "emb", 1, dest / EMB, 1)
    install_version(tiny_src / "cls", 1, dest / CLS, 1)
    install_version(tiny_src / "iris", 1, dest / IRIS, 1)
    return dest


def edge_settings(issuer: Issuer, origins: list[str], **extra: Any) -> dict[str, Any]:  # noqa: F811
    return {
        "origins": [{"url": u} for u in origins],
        "issuers": [{"issuer": issuer.url, "jwks_url": issuer.url + "/keys"}],
        "rate_limits": OPEN_LIMITS,
        "health_interval_seconds": 0.5,
        **extra,
    }


@dataclass
class Stack:
    origins: list[OriginProcess]
    edge: Proc
    issuer: Issuer

    def token(self, **overrides: Any) -> str:
        return self.issuer.token("ed-1", **overrides)

    def auth(self, **overrides: Any) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token(**overrides)}"}


@pytest.fixture(scope="session")
def res_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("resilience")


@pytest.fixture(scope="session")
def stack(tiny_src: Path, issuer: Issuer, res_tmp: Path) -> Iterator[Stack]:  # noqa: F811
    """Two real origins and one real edge, shared by the read-only resilience tests."""
    models = make_repo(tiny_src, res_tmp / "models")
    origins = [
        OriginProcess(
            models,
            res_tmp / f"origin-{i}.log",
            OUTPOST_ORIGIN_MAX_BODY_BYTES="262144",
            OUTPOST_ORIGIN_MAX_INPUTS_PER_REQUEST="64",
        ).start()
        for i in range(2)
    ]
    edge = start_edge(
        edge_settings(issuer, [o.url for o in origins], cors_origins=["https://app.example"]),
        res_tmp,
    )
    try:
        yield Stack(origins, edge, issuer)
    finally:
        edge.stop()
        for o in origins:
            o.stop()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as c:
        yield c


class EchoOrigin:
    """A stand-in upstream on a real loopback HTTP server that records every request it gets
    (path, headers, body), so tests can see exactly what the edge forwarded."""

    def __init__(self) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests: list[dict[str, Any]] = []
        echo = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                record = {
                    "method": self.command,
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body,
                }
                if not self.path.startswith("/v2/health"):
                    echo.requests.append(record)
                out = json.dumps({"model": "echo", "seen": len(echo.requests)}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                self.send_header("x-model-name", "echo")
                self.send_header("x-model-version", "1")
                self.send_header("cache-control", "public, max-age=60")
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture(scope="session")
def echo_origin() -> Iterator[EchoOrigin]:
    echo = EchoOrigin()
    yield echo
    echo.close()


@pytest.fixture(scope="session")
def echo_edge(echo_origin: EchoOrigin, issuer: Issuer, res_tmp: Path) -> Iterator[Proc]:  # noqa: F811
    """An edge in front of the echo origin: tight per-IP limits, CORS open to `*`."""
    settings = edge_settings(
        issuer,
        [echo_origin.url],
        cors_origins=["*"],
        rate_limits={
            "default": {"rate": 0.01, "burst": 3},
            "inference": {"rate": 0.01, "burst": 5},
            "identity": {"rate": 0.01, "burst": 3},
        },
    )
    edge = start_edge(settings, res_tmp)
    yield edge
    edge.stop()


# -- origins that answer only proven callers ------------------------------------------------
def proven_origin(
    vault: DevVault, models: Path, log: Path, *, grpc: bool = False, **env: str
) -> OriginProcess:
    """A real origin with Vault (token issuer, secrets refreshed every second) that requires
    caller proofs, with its internal listener on `admin_url`; started and ready."""
    admin = free_port()
    origin = OriginProcess(
        models,
        log,
        grpc=grpc,
        OUTPOST_VAULT_ENABLED="true",
        OUTPOST_VAULT_ADDR=vault.addr,
        OUTPOST_VAULT_APPROLE_FILE=str(vault.state_dir / "origin-approle.json"),
        OUTPOST_VAULT_REFRESH_INTERVAL="1",
        OUTPOST_VAULT_RETRY_INTERVAL="0.5",
        OUTPOST_VAULT_TIMEOUT="1",
        OUTPOST_ORIGIN_CALLER_PROOF_REQUIRED="true",
        OUTPOST_ORIGIN_ADMIN_PORT=str(admin),
        **env,
    )
    origin.env.setdefault("OUTPOST_IDENTITY_ISSUER", origin.url)
    origin.admin_url = f"http://127.0.0.1:{admin}"  # type: ignore[attr-defined]
    origin.start()
    deadline = time.monotonic() + 60
    while httpx.get(origin.url + "/v2/health/ready", timeout=5).status_code != 200:
        assert time.monotonic() < deadline, origin.logs()[-3000:]
        time.sleep(0.2)
    return origin


def current_key(vault: DevVault) -> tuple[str, bytes]:
    """(key id, key) the edge signs with now (Vault's current caller key)."""
    kid, _, encoded = caller_key.ensure(vault.root, []).partition(":")
    return kid, base64.b64decode(encoded)


def proof_headers(
    key: tuple[str, bytes],
    method: str,
    target: str,
    *,
    subject: str = "svc:tests",
    rid: str | None = None,
    t: float | None = None,
) -> dict[str, str]:
    """What an internal service sends to prove `method target` (origin.caller.sign)."""
    rid = rid or uuid.uuid4().hex
    when = int(time.time() if t is None else t)
    value = sign(key[1], key[0], when, method, target, rid, subject)
    return {"x-outpost-caller": value, "x-request-id": rid}


@dataclass
class ProvenStack:
    vault: DevVault
    origin: OriginProcess
    edge: Proc
    issuer: Issuer

    def key(self) -> tuple[str, bytes]:
        return current_key(self.vault)

    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.issuer.token('ed-1')}"}


@pytest.fixture(scope="session")
def proven_stack(
    dev_vault: DevVault,  # noqa: F811
    tiny_src: Path,  # noqa: F811
    issuer: Issuer,  # noqa: F811
    res_tmp: Path,
) -> Iterator[ProvenStack]:
    """OpenBao, one origin requiring caller proofs (HTTP and gRPC, token issuer on), and an edge
    that signs with Vault's caller key (handed over in its environment)."""
    models = make_repo(tiny_src, res_tmp / "proven-models")
    origin = proven_origin(
        dev_vault,
        models,
        res_tmp / "proven-origin.log",
        grpc=True,
        OUTPOST_IDENTITY_REGISTER_PER_ADDRESS="100000",
    )
    edge = start_edge(
        edge_settings(issuer, [origin.url], caller_key=caller_key.ensure(dev_vault.root, [])),
        res_tmp,
    )
    try:
        yield ProvenStack(dev_vault, origin, edge, issuer)
    finally:
        edge.stop()
        origin.stop()
