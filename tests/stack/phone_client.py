"""What a phone on the LAN does first, run inside the phone's network namespace.

    python -m tests.stack.phone_client <edge URL> <demo credentials file> <origin port> <vault port>

It follows the issuer's discovery document, registers a device with the app's API key and a
device key (a DPoP proof, as the mobile guide's clients send), asks for an embedding with the
device-bound token and a fresh proof, and tries the origin's and Vault's ports on the server's
LAN address (which must be closed). Prints one JSON object with what it saw; the test asserts on it.
"""

from __future__ import annotations

import base64
import json
import socket
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from outpost.devicekey import DeviceKey, auth_headers, register


def _claims(jwt: str) -> dict:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex((host, port)) == 0


def main(edge: str, credentials_file: str, origin_port: int, vault_port: int) -> dict:
    seen: dict = {}
    with httpx.Client(timeout=30) as http:
        seen["healthz"] = http.get(f"{edge}/healthz").status_code
        discovery = http.get(f"{edge}/.well-known/openid-configuration").json()
        seen["discovery"] = {k: discovery[k] for k in ("issuer", "token_endpoint", "jwks_uri")}
        seen["jwks_keys"] = len(http.get(discovery["jwks_uri"]).json()["keys"])
        api_key = json.loads(Path(credentials_file).read_text())["api_key"]
        key = DeviceKey()
        started = time.perf_counter()
        token = register(http, discovery["token_endpoint"], api_key, key, scope="inference")
        seen["register_ms"] = round((time.perf_counter() - started) * 1000, 1)
        seen["token_status"] = token.status_code
        access = token.json()["access_token"]
        seen["token_iss"] = _claims(access)["iss"]
        seen["token_type"] = token.json()["token_type"]
        url = f"{edge}/v1/embeddings"
        started = time.perf_counter()
        emb = http.post(
            url,
            headers=auth_headers(key, "POST", url, access),
            json={"model": "minilm", "input": "hello from the phone"},
        )
        seen["embedding_ms"] = round((time.perf_counter() - started) * 1000, 1)
        seen["embedding_status"] = emb.status_code
        seen["embedding_model"] = emb.headers.get("x-model-name")
        seen["embedding_dims"] = len(emb.json()["data"][0]["embedding"])
    host = urlsplit(edge).hostname or ""
    seen["origin_port_open"] = _port_open(host, origin_port)
    seen["vault_port_open"] = _port_open(host, vault_port)
    return seen


if __name__ == "__main__":
    edge_url, creds, origin, vault = sys.argv[1:5]
    print(json.dumps(main(edge_url, creds, int(origin), int(vault))))
