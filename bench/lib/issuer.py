"""A throwaway token issuer for driving the edge in benchmarks.

The edge verifies bearer tokens against an issuer's JWKS. For a load test we don't need Vault or
the origin's issuer: this makes an Ed25519 key, serves its JWKS over loopback HTTP from a thread,
and mints long-lived tokens with the `inference` scope (audience `outpost`, as
`components.edge_env` configures the edge).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

KID = "bench-1"


class BenchIssuer:
    """Serves `/jwks.json` on 127.0.0.1 until `close()`; `token()` mints a bearer token."""

    def __init__(self) -> None:
        self._key = Ed25519PrivateKey.generate()
        jwk = json.loads(OKPAlgorithm.to_jwk(self._key.public_key()))
        jwk.update(kid=KID, alg="EdDSA", use="sig")
        body = json.dumps({"keys": [jwk]}).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200 if self.path == "/jwks.json" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def jwks_url(self) -> str:
        return self.url + "/jwks.json"

    def token(self, ttl: float = 4 * 3600) -> str:
        now = int(time.time())
        claims = {
            "iss": self.url,
            "aud": "outpost",
            "sub": "bench",
            "client_id": "bench-app",
            "scope": "inference",
            "iat": now,
            "exp": now + int(ttl),
        }
        return jwt.encode(claims, self._key, algorithm="EdDSA", headers={"kid": KID})

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
