"""The deployed Worker code (edge/worker/entry.py + vendored deps) imports and serves inside real
Pyodide (npm `pyodide` matching wrangler.toml's compatibility date) with the real
`workers-runtime-sdk`: auth, cache and forwarding against a real local origin."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.edge.conftest import ROOT, Issuer, Proc, embed, issuer_settings

SDK = "workers-runtime-sdk==1.9.5"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(vendored python_modules, SDK wheel) built exactly as for `wrangler deploy`."""
    from edge.vendor import vendor

    work = tmp_path_factory.mktemp("worker")
    return vendor(work / "python_modules"), sdk_wheel()


def sdk_wheel() -> Path:
    """The real `workers` SDK's wheel (downloaded once into .outpost/wheels)."""
    cache = ROOT / ".outpost" / "wheels"
    wheels = list(cache.glob("workers_runtime_sdk-1.9.5-*.whl"))
    if not wheels:
        subprocess.run(
            [
                os.sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                SDK,
                "-d",
                str(cache),
            ],
            check=True,
            timeout=120,
        )
        wheels = list(cache.glob("workers_runtime_sdk-1.9.5-*.whl"))
    return wheels[0]


@pytest.fixture(scope="module")
def worker(
    bundle: tuple[Path, Path],
    issuer: Issuer,
    oidc_issuer: Issuer,
    shared_origin: Proc,
    log_dir: Path,
) -> Iterator[tuple[Proc, dict]]:
    node = shutil.which("node")
    assert node, "node is required (see package.json)"
    env = {
        **os.environ,
        "WORKER_ENV": json.dumps(
            {
                "OUTPOST_EDGE_ORIGINS": json.dumps([{"url": shared_origin.url}]),
                "OUTPOST_EDGE_ISSUERS": json.dumps(issuer_settings(issuer, oidc_issuer)),
                "OUTPOST_EDGE_GZIP_MIN_BYTES": "64",  # the tiny model's answers are small
            }
        ),
    }
    log = log_dir / "pyodide-worker.log"
    script = ROOT / "tests" / "edge" / "pyodide" / "run_worker.mjs"
    with log.open("wb") as err:
        popen = subprocess.Popen(
            [node, str(script), str(ROOT), str(bundle[0]), str(bundle[1])],
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
            cwd=ROOT,
        )
    assert popen.stdout is not None
    line = popen.stdout.readline()  # bounded: the process exits (EOF) if startup fails
    if not line:
        popen.wait(timeout=30)
        pytest.fail("worker harness died:\n" + log.read_text()[-4000:])
    info = json.loads(line)
    proc = Proc(popen, f"http://127.0.0.1:{info['port']}", log)
    print(
        f"pyodide load {info['load_ms']:.0f} ms; import: workers SDK {info['sdk_import_ms']:.0f} ms"
        f" + entry {info['entry_import_ms']:.0f} ms; first request adds"
        f" {info['first_request_import_ms']:.0f} ms of edge imports"
    )
    yield proc, info
    proc.stop()


def test_worker_serves_authenticated_cached_inference_in_pyodide(
    worker: tuple[Proc, dict], issuer: Issuer, oidc_issuer: Issuer
) -> None:
    proc, _ = worker
    with httpx.Client(timeout=60) as client:
        assert embed(client, proc, None, "pyodide").status_code == 401
        bad = embed(client, proc, issuer.token("ed-1", aud="nope"), "pyodide")
        assert bad.status_code == 401
        first = embed(client, proc, issuer.token("ed-1"), "pyodide")
        assert first.status_code == 200, first.text
        assert first.headers["x-cache"] == "MISS"
        assert first.headers["x-model-name"] == "tiny-embed"
        second = embed(client, proc, issuer.token("ed-1"), "pyodide")
        assert second.headers["x-cache"] == "HIT"
        assert second.json() == first.json()
        # WebCrypto ES256 and RS256 paths, via OIDC discovery.
        for kid in ("es-1", "rs-1"):
            assert embed(client, proc, oidc_issuer.token(kid), "pyodide").status_code == 200
        forged = oidc_issuer.hs256_with_public_key("rs-1")
        assert embed(client, proc, forged, "pyodide").status_code == 401
        health = client.get(proc.url + "/healthz").json()
        assert health["platform"] == "workers"
        # The request contract: an escaped unreserved character routes as itself.
        body = {"inputs": [{"name": "t", "shape": [1], "datatype": "BYTES", "data": ["x"]}]}
        auth = {"authorization": f"Bearer {issuer.token('ed-1')}"}
        for path in ("/v2/models/tiny-embed/infer", "/v2/models/tiny-%65mbed/infer"):
            assert client.post(proc.url + path, json=body, headers=auth).status_code == 200


def test_worker_gzips_answers_with_zlib_in_pyodide(
    worker: tuple[Proc, dict], issuer: Issuer
) -> None:
    """The Worker's own gzip (`edge.compression`, the standard library's zlib inside Pyodide): a
    client that accepts gzip gets the same JSON compressed, on a miss and on a hit."""
    proc, _ = worker
    token = issuer.token("ed-1")
    with httpx.Client(timeout=60) as client:
        plain = embed(client, proc, token, "pyodide gzip", headers={"accept-encoding": "identity"})
        assert plain.status_code == 200, plain.text
        assert "content-encoding" not in plain.headers
        for text, state in (("pyodide gzip", "HIT"), ("pyodide gzip miss", "MISS")):
            zipped = embed(client, proc, token, text, headers={"accept-encoding": "gzip"})
            assert zipped.status_code == 200, zipped.text
            assert zipped.headers["x-cache"] == state
            assert zipped.headers["content-encoding"] == "gzip"  # httpx decoded it to read it
            assert zipped.json()["data"]
        hit = embed(client, proc, token, "pyodide gzip", headers={"accept-encoding": "gzip"})
        assert hit.json() == plain.json()


def test_worker_module_level_imports_only_the_entry(worker: tuple[Proc, dict]) -> None:
    """Cold start: importing the entry loads no edge machinery but the quota Durable Object's
    module; `edge.core.app` and its imports wait for the first request (the times are printed
    above, and measured in bench/)."""
    _, info = worker
    # The entry defines the quota Durable Object class, so its small module loads at once.
    assert set(info["eager_modules"]) == {
        "edge",
        "edge.entry",
        "edge.limits",
        "edge.limits.durable",
        "edge.limits.quota",
    }
    assert info["entry_import_ms"] > 0 and info["first_request_import_ms"] > 0
