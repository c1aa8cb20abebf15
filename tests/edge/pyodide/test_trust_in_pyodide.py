"""The device-trust checks as the Worker runs them: `edge.auth.dpop` and
`edge.auth.attestation` from the Worker bundle (edge.vendor), inside real Pyodide (npm `pyodide`
matching wrangler.toml's date),
on the Workers platform: ES256 and RS256 through WebCrypto, the App Check key set through
`fetch` from a local stand-in for Google's endpoint (the one FAKE: tests/fake_appcheck.py)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from outpost.devicekey import DeviceKey
from tests.edge.conftest import ROOT
from tests.fake_appcheck import ANDROID_APP, PROJECT_NUMBER, FakeAppCheck

URL = "https://api.example.com/v1/embeddings"
TOKEN = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJkZXZpY2UifQ.c2ln"


def dpop_case(key: DeviceKey, proof: str | None, **kw: object) -> dict:
    case = {
        "scheme": "dpop",
        "access_token": TOKEN,
        "token_jkt": key.jkt,
        "proof": proof,
        "method": "POST",
        "url": URL,
    }
    case.update(kw)
    return case


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from edge.vendor import vendor

    node = shutil.which("node")
    assert node, "node is required (see package.json)"
    work = tmp_path_factory.mktemp("trust")
    modules = vendor(work / "python_modules")
    device, thief = DeviceKey(), DeviceKey()
    good = device.proof("POST", URL, TOKEN)
    h, p, s = good.split(".")
    forged_sig = s[:-4] + ("AAAA" if s[-4:] != "AAAA" else "BBBB")
    with FakeAppCheck() as google:
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cases = {
            "dpop": [
                ("valid", dpop_case(device, good)),
                ("replayed", dpop_case(device, good)),
                ("thief's key", dpop_case(device, thief.proof("POST", URL, TOKEN))),
                ("other URL", dpop_case(device, device.proof("POST", URL + "x", TOKEN))),
                ("bad signature", dpop_case(device, f"{h}.{p}.{forged_sig}")),
                ("no proof", dpop_case(device, None)),
                ("bearer downgrade", dpop_case(device, None, scheme="bearer")),
            ],
            "timed": [dpop_case(device, device.proof("POST", URL, TOKEN)) for _ in range(200)],
            "attestation_settings": {
                "modes": {"inference": "enforce"},
                "issuers": [
                    {
                        "issuer": google.issuer,
                        "jwks_url": google.url,
                        "audiences": [f"projects/{PROJECT_NUMBER}"],
                        "app_ids": [ANDROID_APP],
                    }
                ],
            },
            "attestation": [
                ("valid", google.token()),
                ("forged", google.token(key=other)),
                ("expired", google.token(expires_in=-600)),
                ("wrong app", google.token("1:123456789012:ios:ffff")),
                ("missing", None),
            ],
        }
        cases_file = work / "cases.json"
        cases_file.write_text(json.dumps(cases))
        script = ROOT / "tests" / "edge" / "pyodide" / "run_trust.mjs"
        proc = subprocess.run(
            [node, str(script), str(ROOT), str(modules), str(cases_file)],
            capture_output=True,
            text=True,
            timeout=180,
            cwd=ROOT,
        )
        fetches = google.fetches
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["google_fetches"] = fetches
    out["bundle"] = sorted(
        str(p.relative_to(modules / "edge")) for p in (modules / "edge").rglob("*.py")
    )
    print(
        f"in Pyodide {out['python']}: {out['ms_per_proof']:.2f} ms wall per DPoP proof check "
        "(WebCrypto ES256 under Node)"
    )
    return out


def test_dpop_proofs_are_checked_with_webcrypto_in_pyodide(results: dict) -> None:
    assert results["dpop"] == {
        "valid": "ok",
        "replayed": "invalid_dpop_proof",
        "thief's key": "invalid_token",
        "other URL": "invalid_dpop_proof",
        "bad signature": "invalid_dpop_proof",
        "no proof": "invalid_dpop_proof",
        "bearer downgrade": "invalid_token",
    }
    assert results["timed_accepted"] == 200


def test_app_check_tokens_are_checked_with_fetch_and_webcrypto_in_pyodide(results: dict) -> None:
    assert results["attestation"] == {
        "valid": "valid",
        "forged": "bad_signature",
        "expired": "expired",
        "wrong app": "wrong_app",
        "missing": "missing",
    }
    assert results["google_fetches"] == 1  # fetched once through js.fetch, then cached


TRUST_MODULES = ("auth/dpop.py", "auth/attestation.py", "auth/jose.py", "auth/jwks.py", "config.py")


def test_the_trust_modules_ship_in_the_worker_bundle(results: dict) -> None:
    assert set(TRUST_MODULES) <= set(results["bundle"])
    for name in TRUST_MODULES:
        source = (ROOT / "edge" / name).read_text()
        for banned in ("import cryptography", "import jwt", "pydantic", "httpx", "aiohttp"):
            assert banned not in source, f"edge/{name} imports {banned}: not in Workers"
