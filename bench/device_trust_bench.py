"""What the edge's device-trust checks cost per request (a benchmark, not a test).

    .venv/bin/python bench/device_trust_bench.py [--reps 2000] [--rounds 5]
                                                 [--out bench/results/device_trust.json]

CPU µs per request (process time, medians of interleaved rounds) on the local platform of:
- `dpop`: the whole proof check of `edge.auth.dpop` for a device-bound token (fresh ES256 proofs, as
  every request brings one): the target is at most 100 µs;
- `signature`: the platform's ES256 signature check alone, on the same proofs;
- `openssl`: `cryptography`'s bare ECDSA P-256 verify (the floor any Python edge pays);
- `attestation_cached`: an App Check token the edge verified before (the common case);
- `attestation_first`: a token's first check (RS256 signature and claims).
Ratios come from the same run. Proofs and tokens are made before the clock starts.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cryptography  # noqa: E402
import jwt  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature  # noqa: E402
from jwt.algorithms import RSAAlgorithm  # noqa: E402

from bench.lib.cli import reps_rounds  # noqa: E402
from edge.auth import jose  # noqa: E402
from edge.auth.attestation import AttestationVerifier  # noqa: E402
from edge.auth.dpop import DpopVerifier  # noqa: E402
from edge.config import DpopSettings, parse_attestation  # noqa: E402
from edge.core.request import UpstreamResponse  # noqa: E402
from edge.runtime.local import LocalPlatform  # noqa: E402
from outpost.devicekey import DeviceKey  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "device_trust.json"
URL = "https://api.example.com/v1/embeddings"
TOKEN = "eyJhbGciOiJFZERTQSIsImtpZCI6Im91dHBvc3Qtand0LXYxIn0.eyJzdWIiOiJkZXZpY2UifQ.c2lnbmF0dXJl"
TARGET_US = 100.0
PROJECT = "123456789012"
APP_ID = f"1:{PROJECT}:android:0a1b2c3d4e5f"


class AppCheckKey:
    """An RSA key standing in for App Check's: its JWKS and App Check-shaped tokens."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        self.jwks = {"keys": [{**jwk, "kid": "k1", "alg": "RS256", "use": "sig"}]}

    def token(self) -> str:
        now = int(time.time())
        claims = {
            "iss": f"https://firebaseappcheck.googleapis.com/{PROJECT}",
            "sub": APP_ID,
            "aud": [f"projects/{PROJECT}"],
            "iat": now,
            "exp": now + 3600,
            "jti": os.urandom(8).hex(),
        }
        return jwt.encode(claims, self.key, "RS256", headers={"kid": "k1", "typ": "JWT"})


class JwksPlatform(LocalPlatform):
    """The local platform, with App Check's key set answered from memory (no network)."""

    def __init__(self, jwks: dict) -> None:
        super().__init__()
        self._jwks = json.dumps(jwks).encode()

    async def fetch(self, method, url, headers, body, timeout):  # type: ignore[override]
        return UpstreamResponse(200, {"content-type": "application/json"}, self._jwks)


async def _cpu_us(calls: list[Callable[[], Awaitable[object]]]) -> float:
    start = time.process_time()
    for call in calls:
        await call()
    return 1e6 * (time.process_time() - start) / len(calls)


def main() -> None:
    args = reps_rounds(__doc__.split("\n")[0], 2000, "requests", RESULTS)

    google = AppCheckKey()
    settings = parse_attestation(
        {
            "modes": {"inference": "enforce"},
            "issuers": [{"firebase_project_number": PROJECT, "app_ids": [APP_ID]}],
        }
    )
    local = JwksPlatform(google.jwks)
    key = DeviceKey()
    public = key.private_key.public_key()
    ecdsa = ec.ECDSA(hashes.SHA256())
    samples: dict[str, list[float]] = {
        k: [] for k in ("dpop", "signature", "openssl", "attestation_cached", "attestation_first")
    }

    async def one_round(i: int) -> None:
        dpop = DpopVerifier(DpopSettings(), local)
        attestation = AttestationVerifier(settings, local)
        proofs = [key.proof("POST", URL, TOKEN) for _ in range(args.reps)]
        parts = [p.split(".") for p in proofs]
        signed = [(f"{h}.{p}".encode(), jose.b64url_decode(s)) for h, p, s in parts]
        der = [
            (m, encode_dss_signature(int.from_bytes(s[:32], "big"), int.from_bytes(s[32:], "big")))
            for m, s in signed
        ]
        first_tokens = [google.token() for _ in range(max(20, args.reps // 20))]
        cached = google.token()
        await attestation.check("inference", cached)

        def check(p: str) -> Callable[[], Awaitable[object]]:
            return lambda: dpop.check_request(
                scheme="dpop",
                access_token=TOKEN,
                token_jkt=key.jkt,
                proof=p,
                method="POST",
                url=URL,
                route_class="inference",
            )

        async def bare(m: bytes, d: bytes) -> None:
            public.verify(d, m, ecdsa)

        cells: dict[str, list[Callable[[], Awaitable[object]]]] = {
            "dpop": [check(p) for p in proofs],
            "signature": [
                (lambda m=m, s=s: local.verify_signature("ES256", key.jwk, m, s)) for m, s in signed
            ],
            "openssl": [(lambda m=m, d=d: bare(m, d)) for m, d in der],
            "attestation_cached": [
                (lambda: attestation.check("inference", cached)) for _ in range(args.reps)
            ],
            "attestation_first": [
                (lambda t=t: attestation.check("inference", t)) for t in first_tokens
            ],
        }
        order = list(cells) if i % 2 == 0 else list(reversed(cells))
        for name in order:
            samples[name].append(await _cpu_us(cells[name]))

    for i in range(args.rounds):
        asyncio.run(one_round(i))
    cpu = {name: round(statistics.median(v), 1) for name, v in samples.items()}
    result = {
        "benchmark": "device_trust",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "versions": {"cryptography": cryptography.__version__},
        "rounds": args.rounds,
        "reps": args.reps,
        "cpu_us": cpu,
        "ratios": {
            "dpop_over_signature": round(cpu["dpop"] / cpu["signature"], 2),
            "signature_over_openssl": round(cpu["signature"] / cpu["openssl"], 2),
        },
        "dpop_target_us": TARGET_US,
        "dpop_within_target": cpu["dpop"] <= TARGET_US,
    }
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
