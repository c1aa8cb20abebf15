"""A FAKE of Google's Firebase App Check endpoint, because the tests cannot reach Google.

It is the one stand-in of the device-trust tests: a real HTTP server on loopback that publishes
the public half of RSA keys the test holds, as Google publishes App Check's keys at
https://firebaseappcheck.googleapis.com/v1/jwks, and tokens shaped as App Check issues them
(RS256, `typ: JWT`, `iss: https://firebaseappcheck.googleapis.com/<project number>`,
`aud: ["projects/<number>", "projects/<project id>"]`, `sub`: the Firebase app id, one hour).
Everything that checks those tokens is the real code.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.conftest import free_port

PROJECT_NUMBER = "123456789012"
PROJECT_ID = "outpost-demo"
ANDROID_APP = "1:123456789012:android:0a1b2c3d4e5f"
IOS_APP = "1:123456789012:ios:5f4e3d2c1b0a"


class FakeAppCheck:
    """Serves `/v1/jwks`; `token()` mints App Check-shaped tokens with the served key."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = uuid.uuid4().hex[:8]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1/jwks"
        self.issuer = f"https://firebaseappcheck.googleapis.com/{PROJECT_NUMBER}"
        self.fetches = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake.fetches += 1
                body = json.dumps(fake.jwks()).encode()
                self.send_response(200 if self.path == "/v1/jwks" else 404)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**jwk, "kid": self.kid, "alg": "RS256", "use": "sig"}]}

    def token(
        self,
        app_id: str = ANDROID_APP,
        *,
        expires_in: float = 3600,
        project_number: str = PROJECT_NUMBER,
        key: rsa.RSAPrivateKey | None = None,
        kid: str | None = None,
        issuer: str | None = None,
    ) -> str:
        now = int(time.time())
        claims = {
            "iss": issuer or f"https://firebaseappcheck.googleapis.com/{project_number}",
            "sub": app_id,
            "aud": [f"projects/{project_number}", f"projects/{PROJECT_ID}"],
            "iat": now,
            "exp": int(now + expires_in),
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(
            claims,
            key or self.key,
            algorithm="RS256",
            headers={"kid": kid or self.kid, "typ": "JWT"},
        )

    def __enter__(self) -> FakeAppCheck:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
