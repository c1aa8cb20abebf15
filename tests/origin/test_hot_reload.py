"""Hot reload under concurrent load against a real origin process watching its models folder."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.origin.conftest import OriginProcess, install_version, write_yaml

WAIT = 30.0  # seconds: upper bound for the watcher to pick a change up


@pytest.fixture(scope="module")
def reload_origin(
    tiny_src: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OriginProcess]:
    root = tmp_path_factory.mktemp("reload-models")
    install_version(tiny_src / "emb", 1, root / "emb", 1)
    proc = OriginProcess(root, tmp_path_factory.mktemp("logs") / "reload.log").start()
    yield proc
    proc.stop()


def wait_for(check: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def versions(url: str, model: str) -> dict[int, dict]:
    models = {m["name"]: m for m in httpx.get(url + "/v1/models").json()["data"]}
    if model not in models:
        return {}
    return {v["version"]: v for v in models[model]["versions"]}


def served_version(url: str) -> str:
    r = httpx.post(url + "/v1/embeddings", json={"model": "emb", "input": "which version?"})
    assert r.status_code == 200, r.text
    return r.headers["x-model-version"]


async def test_new_version_swaps_in_under_load_without_losing_a_request(
    reload_origin: OriginProcess, tiny_src: Path
):
    url = reload_origin.url
    results: list[tuple[int, str | None]] = []
    stop = asyncio.Event()

    async def load_loop(client: httpx.AsyncClient, n: int) -> None:
        i = 0
        while not stop.is_set():
            r = await client.post(
                "/v1/embeddings", json={"model": "emb", "input": [f"client {n} request {i}"]}
            )
            results.append((r.status_code, r.headers.get("x-model-version")))
            i += 1

    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        workers = [asyncio.create_task(load_loop(client, n)) for n in range(8)]
        await asyncio.sleep(0.5)
        await asyncio.to_thread(
            install_version, tiny_src / "emb", 2, reload_origin.models_dir / "emb", 2
        )
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline and not any(v == "2" for _, v in results[-20:]):
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # keep the load going across the swap
        stop.set()
        await asyncio.gather(*workers)

    statuses = [s for s, _ in results]
    assert statuses and all(s == 200 for s in statuses), sorted(set(statuses))
    seen = [v for _, v in results]
    assert "1" in seen and "2" in seen
    assert seen[-1] == "2"
    assert served_version(url) == "2"
    assert versions(url, "emb")[1]["state"] == "ready"  # v1 stays loaded for explicit requests
    r = httpx.post(
        url + "/v2/models/emb/versions/1/infer",
        json={"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["old"]}]},
    )
    assert r.status_code == 200 and r.json()["model_version"] == "1"


def _broken_bad_config(v3: Path) -> None:
    (v3 / "model.yaml").write_text("pooling: max\n")


def _broken_corrupt_onnx(v3: Path) -> None:
    (v3 / "model.onnx").write_bytes(b"this is not an onnx protobuf" * 100)


def _broken_tokenizer_mismatch(v3: Path) -> None:
    path = v3 / "tokenizer.json"
    tok = json.loads(path.read_text())
    vocab = tok["model"]["vocab"]
    n = len(vocab)
    for i in range(500):
        vocab[f"zz-extra-{i}"] = n + i
    path.write_text(json.dumps(tok))


@pytest.mark.parametrize(
    ("breaker", "file", "field"),
    [
        (_broken_bad_config, "3/model.yaml", "pooling"),
        (_broken_corrupt_onnx, "3/model.onnx", None),
        (_broken_tokenizer_mismatch, "3/tokenizer.json", "vocab_size"),
    ],
    ids=["bad-config", "corrupt-onnx", "tokenizer-mismatch"],
)
def test_broken_version_is_reported_and_the_old_one_keeps_serving(
    reload_origin: OriginProcess, tiny_src: Path, tmp_path: Path, breaker, file, field
):
    url = reload_origin.url
    model_dir = reload_origin.models_dir / "emb"
    if not (model_dir / "2").exists():
        install_version(tiny_src / "emb", 2, model_dir, 2)
    wait_for(lambda: served_version(url) == "2", "version 2 serving")
    staged = tmp_path / "3"
    shutil.copytree(tiny_src / "emb" / "2", staged)
    breaker(staged)
    shutil.move(str(staged), model_dir / ".tmp-3")
    (model_dir / ".tmp-3").rename(model_dir / "3")
    try:
        wait_for(lambda: versions(url, "emb").get(3, {}).get("state") == "failed", "v3 failed")
        err = versions(url, "emb")[3]["error"]
        assert err["file"].endswith(file)
        assert err["field"] == field
        assert err["message"]
        for _ in range(5):
            assert served_version(url) == "2"
        health = httpx.get(url + "/healthz").json()
        assert health["ready"] and any("version 3" in d for d in health["degraded"])
        r = httpx.post(
            url + "/v2/models/emb/versions/3/infer",
            json={"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["x"]}]},
        )
        assert r.status_code == 503
    finally:
        shutil.rmtree(model_dir / "3")
    wait_for(lambda: 3 not in versions(url, "emb"), "v3 forgotten")


def test_broken_model_config_keeps_the_loaded_versions_serving(reload_origin: OriginProcess):
    url = reload_origin.url
    path = reload_origin.models_dir / "emb" / "model.yaml"
    good = path.read_text()
    write_yaml(path, {**yaml.safe_load(good), "truncation": "sometimes"})
    try:

        def reported() -> bool:
            m = {m["name"]: m for m in httpx.get(url + "/v1/models").json()["data"]}["emb"]
            return "config_error" in m

        wait_for(reported, "config error reported")
        m = {m["name"]: m for m in httpx.get(url + "/v1/models").json()["data"]}["emb"]
        assert m["config_error"]["field"] == "truncation"
        assert m["config_error"]["file"].endswith("emb/model.yaml")
        assert served_version(url) in {"1", "2"}
    finally:
        path.write_text(good)

    def cleared() -> bool:
        m = {m["name"]: m for m in httpx.get(url + "/v1/models").json()["data"]}["emb"]
        return "config_error" not in m and m["served_version"] is not None

    wait_for(cleared, "config error cleared")


def test_new_model_folder_is_served_within_seconds(reload_origin: OriginProcess, tiny_src: Path):
    url = reload_origin.url
    staged = reload_origin.models_dir / ".tmp-newcls"
    install_version(tiny_src / "cls", 1, staged, 1)
    staged.rename(reload_origin.models_dir / "newcls")

    def served() -> bool:
        r = httpx.post(url + "/v1/classifications", json={"model": "newcls", "input": "hi"})
        return r.status_code == 200

    wait_for(served, "newcls served")  # raises AssertionError on timeout
    listed = {m["name"]: m for m in httpx.get(url + "/v1/models").json()["data"]}
    assert listed["newcls"]["served_version"] == 1


def test_removing_a_version_folder_unloads_it(reload_origin: OriginProcess, tiny_src: Path):
    url = reload_origin.url
    model_dir = reload_origin.models_dir / "emb"
    if not (model_dir / "2").exists():
        install_version(tiny_src / "emb", 2, model_dir, 2)
    wait_for(lambda: 2 in versions(url, "emb"), "v2 listed")
    shutil.rmtree(model_dir / "1")
    wait_for(lambda: 1 not in versions(url, "emb"), "v1 unloaded")
    assert served_version(url) == "2"
    r = httpx.post(
        url + "/v2/models/emb/versions/1/infer",
        json={"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["x"]}]},
    )
    assert r.status_code == 404
    assert "Traceback" not in reload_origin.logs()
