"""Real processes for the edge's tests: origins (`python -m origin`), the edge
(`python -m edge`), and OIDC issuers whose keys the tests control (a real HTTP server)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from tests.conftest import free_port
from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
AUDIENCE = "outpost"


# -- processes ----------------------------------------------------------------------------------
@dataclass
class Proc:
    popen: subprocess.Popen[bytes]
    url: str
    log: Path
    admin_url: str = ""  # the edge's internal listener (/metrics, detailed /healthz)

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(timeout=10)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def wait_http(proc: Proc, path: str, timeout: float = 90.0) -> None:
    """Poll `proc.url + path` until 200; fail with the process log if it dies or never answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            pytest.fail(f"{proc.url} exited early:\n{proc.output()}")
        try:
            if httpx.get(proc.url + path, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.stop()
    pytest.fail(f"{proc.url}{path} not ready in {timeout}s:\n{proc.output()}")


def _spawn(argv: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("wb") as fh:
        return subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT)


def start_origin(models_dir: Path, log_dir: Path) -> Proc:
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    log = log_dir / f"origin-{port}.log"
    argv = [
        PY,
        "-m",
        "origin",
        "--port",
        str(port),
        "--models-dir",
        str(models_dir),
    ]
    proc = Proc(_spawn(argv, log, env), f"http://127.0.0.1:{port}", log)
    wait_http(proc, "/v2/health/ready")
    return proc


def start_edge(settings: dict[str, Any], log_dir: Path) -> Proc:
    """`python -m edge` with `settings` (env vars), and its internal listener on a free port."""
    port, admin = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_EDGE_")}
    for key, value in settings.items():
        env["OUTPOST_EDGE_" + key.upper()] = value if isinstance(value, str) else json.dumps(value)
    log = log_dir / f"edge-{port}.log"
    argv = [PY, "-m", "edge", "--port", str(port), "--admin-port", str(admin)]
    argv += ["--log-level", "warning"]
    url = f"http://127.0.0.1:{port}"
    proc = Proc(_spawn(argv, log, env), url, log, admin_url=f"http://127.0.0.1:{admin}")
    wait_http(proc, "/healthz", timeout=30)
    return proc


def run_in_pyodide(code: str, *files: str) -> str:
    """What `code` prints inside real Pyodide (npm `pyodide`, as the Worker tests use), with
    these repository files copied in (tests/edge/pyodide/run_python.mjs)."""
    import shutil

    node = shutil.which("node")
    assert node, "node is required (see package.json)"
    runner = ROOT / "tests" / "edge" / "pyodide" / "run_python.mjs"
    result = subprocess.run(
        [node, str(runner), str(ROOT), code, *files],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


# -- issuers ------------------------------------------------------------------------------------
def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class SigningKey:
    kid: str
    alg: str
    private: Any
    jwk: dict[str, Any]

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def make_key(kid: str, alg: str) -> SigningKey:
    if alg == "EdDSA":
        private: Any = ed25519.Ed25519PrivateKey.generate()
        jwk = OKPAlgorithm.to_jwk(private.public_key(), as_dict=True)
    elif alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
        jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    else:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    jwk.update({"kid": kid, "use": "sig", "alg": alg})
    return SigningKey(kid, alg, private, jwk)


@dataclass
class Issuer:
    """An OIDC issuer on a real loopback HTTP server: discovery + JWKS, keys under test control."""

    url: str = ""
    keys: dict[str, SigningKey] = field(default_factory=dict)
    published: set[str] = field(default_factory=set)
    hits: Counter[str] = field(default_factory=Counter)
    server: ThreadingHTTPServer | None = None

    def add_key(self, kid: str, alg: str, publish: bool = True) -> SigningKey:
        key = make_key(kid, alg)
        self.keys[kid] = key
        if publish:
            self.published.add(kid)
        return key

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.keys[k].jwk for k in sorted(self.published)]}

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        base = {
            "iss": self.url,
            "aud": AUDIENCE,
            "sub": "user-1",
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            "scope": "inference models:read",
        }
        base.update(overrides)
        return {k: v for k, v in base.items() if v is not None}

    def token(self, kid: str, **overrides: Any) -> str:
        key = self.keys[kid]
        return jwt.encode(
            self.claims(**overrides), key.private, algorithm=key.alg, headers={"kid": kid}
        )

    def unsigned(self, header: dict[str, Any], **overrides: Any) -> tuple[str, str]:
        """(header.payload, payload) segments for hand-made (attack) tokens."""
        h = b64url(json.dumps(header).encode())
        p = b64url(json.dumps(self.claims(**overrides)).encode())
        return f"{h}.{p}", p

    def hs256_with_public_key(self, kid: str) -> str:
        """The classic confusion attack: HMAC-sign with the issuer's *public* key bytes."""
        signing_input, _ = self.unsigned({"alg": "HS256", "kid": kid, "typ": "JWT"})
        secret = self.keys[kid].public_pem()
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64url(mac)}"


def serve_issuer(issuer: Issuer) -> Issuer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            issuer.hits[self.path] += 1
            if self.path == "/.well-known/openid-configuration":
                body = {"issuer": issuer.url, "jwks_uri": issuer.url + "/keys"}
            elif self.path == "/keys":
                body = issuer.jwks()
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    issuer.server = server
    issuer.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return issuer


@pytest.fixture(scope="session")
def issuer() -> Iterator[Issuer]:
    """The 'origin-like' issuer: EdDSA keys, JWKS URL configured explicitly."""
    iss = serve_issuer(Issuer())
    iss.add_key("ed-1", "EdDSA")
    yield iss
    assert iss.server is not None
    iss.server.shutdown()


@pytest.fixture(scope="session")
def oidc_issuer() -> Iterator[Issuer]:
    """An external OIDC provider: ES256 and RS256 keys, found via discovery."""
    iss = serve_issuer(Issuer())
    iss.add_key("es-1", "ES256")
    iss.add_key("rs-1", "RS256")
    yield iss
    assert iss.server is not None
    iss.server.shutdown()


def issuer_settings(issuer: Issuer, oidc_issuer: Issuer, **extra: Any) -> list[dict[str, Any]]:
    return [
        {"issuer": issuer.url, "jwks_url": issuer.url + "/keys", "algorithms": ["EdDSA"], **extra},
        {"issuer": oidc_issuer.url, "algorithms": ["ES256", "RS256"], **extra},
    ]


# -- models and origins -------------------------------------------------------------------------
EMBED_MODEL = "tiny-embed"
# draft-ietf-httpapi-ratelimit-headers-10: `"<policy>";r=<remaining>;t=<reset seconds>`.
RATELIMIT = re.compile(r'"inference";r=(\d+);t=(\d+)')


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("edge-logs")


@pytest.fixture(scope="session")
def built_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository with one tiny embeddings model (version 1), built once."""
    from outpost.modelkit.tiny import build_tiny_embeddings

    root = tmp_path_factory.mktemp("edge-models")
    build_tiny_embeddings(root / EMBED_MODEL, version=1, seed=0)
    return root


def copy_models(src: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(src, dest)
    return dest


@pytest.fixture(scope="session")
def shared_origin(built_models: Path, log_dir: Path) -> Iterator[Proc]:
    proc = start_origin(built_models, log_dir)
    yield proc
    proc.stop()


def embed(
    client: httpx.Client, edge: Proc, token: str | None, text: str, **kw: Any
) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    headers.update(kw.pop("headers", {}))
    body = {"model": EMBED_MODEL, "input": text}
    return client.post(edge.url + "/v1/embeddings", json=body, headers=headers, timeout=30, **kw)


def edge_metric(edge: Proc, name: str, **labels: str) -> float:
    """Sum of a counter on the edge's /metrics (its internal listener) whose labels include
    `labels`."""
    text = httpx.get(edge.admin_url + "/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


# -- the edge in-process (tests/edge/harness.py) -------------------------------------------------
@pytest.fixture(scope="session")
def mem_issuer() -> Issuer:
    """The origin-like issuer on the fake network: EdDSA keys, JWKS URL configured."""
    from tests.edge.harness import ISSUER_URL, make_issuer

    return make_issuer(ISSUER_URL, ("ed-1", "EdDSA"))


@pytest.fixture(scope="session")
def mem_oidc() -> Issuer:
    """An external OIDC provider on the fake network: ES256 and RS256 keys, via discovery."""
    from tests.edge.harness import OIDC_URL, make_issuer

    return make_issuer(OIDC_URL, ("es-1", "ES256"), ("rs-1", "RS256"))


@pytest.fixture
async def make_edge(mem_issuer: Issuer, mem_oidc: Issuer) -> Any:
    """`make_edge(settings, origins=None)`: an in-process edge in front of fake origins (one
    by default), trusting `mem_issuer` and `mem_oidc`; closed after the test."""
    from tests.edge.harness import (
        EdgeUnderTest,
        FakeOrigin,
        FakePlatform,
        issuers_setting,
        serve_issuer_in_memory,
    )

    made: list[EdgeUnderTest] = []

    def make(
        settings: dict[str, Any] | None = None, origins: list[FakeOrigin] | None = None
    ) -> EdgeUnderTest:
        platform = FakePlatform()
        serve_issuer_in_memory(platform, mem_issuer)
        serve_issuer_in_memory(platform, mem_oidc)
        origins = origins or [FakeOrigin("http://origin-1.test")]
        for origin in origins:
            platform.serve(origin.url, origin)
        merged: dict[str, Any] = {
            "origins": [{"url": o.url} for o in origins],
            "issuers": issuers_setting(mem_issuer, mem_oidc),
        }
        merged.update(settings or {})
        edge = EdgeUnderTest(merged, platform, origins)
        made.append(edge)
        return edge

    yield make
    for edge in made:
        await edge.aclose()


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server of the test's own, for edges that share quota state through it."""
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()
