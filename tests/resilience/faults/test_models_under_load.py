"""Model hot swap and broken model folders of every kind dropped into a running origin under
load: each broken folder is reported in /v1/models naming the file (and field), and the model
that was serving never fails a request."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.origin.conftest import OriginProcess, install_version
from tests.resilience.conftest import EMB, IRIS, make_repo
from tests.resilience.faults.load import Load


@pytest.fixture(scope="module")
def live_origin(tiny_src: Path, res_tmp: Path) -> Iterator[OriginProcess]:
    repo = make_repo(tiny_src, res_tmp / "swap-models")
    yield from OriginProcess(repo, res_tmp / "swap-origin.log").serve()


def embed(client: httpx.Client, base: str, n: int) -> httpx.Response:
    return client.post(base + "/v1/embeddings", json={"model": EMB, "input": f"steady {n % 50}"})


def models(base: str) -> dict[str, dict[str, Any]]:
    data = httpx.get(base + "/v1/models", timeout=10).json()["data"]
    return {m["name"]: m for m in data}


def wait_until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.1)


def place(src: Path, dest: Path) -> None:
    """Rename a fully written folder into place, as real writers do."""
    tmp = dest.with_name(".tmp-" + dest.name)
    shutil.copytree(src, tmp)
    os.rename(tmp, dest)


def model_errors(entry: dict[str, Any] | None) -> list[dict[str, Any]]:
    if entry is None:
        return []
    errs = [entry["config_error"]] if entry.get("config_error") else []
    return errs + [v["error"] for v in entry["versions"] if v.get("error")]


def test_hot_swap_under_load_fails_no_request(live_origin: OriginProcess, tiny_src: Path) -> None:
    base = live_origin.url
    with Load(lambda c, n: embed(c, base, n)) as load:
        load.wait_for(20)
        install_version(tiny_src / "emb", 2, live_origin.models_dir / EMB, 2)
        wait_until(lambda: models(base)[EMB]["served_version"] == 2)
        load.wait_for(20)
    assert load.failures == [], load.failures[:5]
    assert load.versions["1"] > 0 and load.versions["2"] > 0, load.versions


def build_broken(kind: str, tiny_src: Path, work: Path) -> tuple[Path, set[str]]:
    """A broken model folder of `kind`, and the file names its error may point at."""
    folder = work / kind
    install_version(tiny_src / "emb", 1, folder, 1)
    v1 = folder / "1"
    if kind == "bad-yaml":
        (folder / "model.yaml").write_text("task: [embeddings\n  pooling: : mean\n")
        return folder, {"model.yaml"}
    if kind == "invalid-field":
        (folder / "model.yaml").write_text("task: teleportation\nmax_sequence_length: -5\n")
        return folder, {"model.yaml"}
    if kind == "missing-tokenizer":
        for f in v1.glob("tokenizer*"):
            f.unlink()
        (v1 / "vocab.txt").unlink(missing_ok=True)
        return folder, {"model.onnx", "tokenizer.json", "1"}
    if kind == "truncated-onnx":
        data = (v1 / "model.onnx").read_bytes()
        (v1 / "model.onnx").write_bytes(data[: len(data) // 3])
        return folder, {"model.onnx"}
    if kind == "corrupt-onnx":
        (v1 / "model.onnx").write_bytes(os.urandom(4096))
        return folder, {"model.onnx"}
    if kind == "wrong-input-names":
        shutil.copy2(tiny_src / "iris" / "1" / "model.onnx", v1 / "model.onnx")
        return folder, {"model.onnx"}
    if kind == "tokenizer-mismatch":
        tok = json.loads((v1 / "tokenizer.json").read_text())
        vocab = tok["model"]["vocab"]
        extra = len(vocab) + 5000
        for i in range(5000):
            vocab[f"zzextra{i}"] = len(vocab)
        assert len(vocab) == extra
        (v1 / "tokenizer.json").write_text(json.dumps(tok))
        return folder, {"model.onnx", "tokenizer.json"}
    raise AssertionError(kind)


BROKEN = [
    "bad-yaml",
    "invalid-field",
    "missing-tokenizer",
    "truncated-onnx",
    "corrupt-onnx",
    "wrong-input-names",
    "tokenizer-mismatch",
]


def test_broken_model_folders_are_reported_and_serving_continues(
    live_origin: OriginProcess, tiny_src: Path, res_tmp: Path
) -> None:
    base = live_origin.url
    work = res_tmp / "broken-src"
    built = {kind: build_broken(kind, tiny_src, work) for kind in BROKEN}
    with Load(lambda c, n: embed(c, base, n)) as load:
        load.wait_for(10)
        for kind, (folder, _) in built.items():
            place(folder, live_origin.models_dir / f"broken-{kind}")
        # and a broken new version of the model that is serving
        bad_version = work / "emb-v9"
        shutil.copytree(live_origin.models_dir / EMB / "1", bad_version)
        (bad_version / "model.onnx").write_bytes(b"\x08\x01garbage")
        place(bad_version, live_origin.models_dir / EMB / "9")

        def all_reported() -> bool:
            listing = models(base)
            return all(model_errors(listing.get(f"broken-{k}")) for k in BROKEN) and any(
                v.get("error") for v in listing[EMB]["versions"] if v["version"] == 9
            )

        wait_until(all_reported, timeout=60)
        load.wait_for(20)
    assert load.failures == [], load.failures[:5]
    listing = models(base)
    for kind, (_, files) in built.items():
        entry = listing[f"broken-{kind}"]
        assert entry["status"] == "failed", (kind, entry)
        err = model_errors(entry)[0]
        assert Path(err["file"]).name in files, (kind, err)
        assert err["message"] and "Traceback" not in err["message"]
        if kind == "invalid-field":
            assert err["field"] in {"task", "max_sequence_length"}, err
    emb = listing[EMB]
    assert emb["served_version"] in {1, 2}  # the good version keeps serving, 9 is refused
    v9 = next(v for v in emb["versions"] if v["version"] == 9)
    assert v9["state"] == "failed" and Path(v9["error"]["file"]).name == "model.onnx"
    # inference on a broken model is a clear 4xx/503, never a 500
    resp = httpx.post(
        base + "/v1/embeddings", json={"model": "broken-corrupt-onnx", "input": "x"}, timeout=10
    )
    assert resp.status_code in {404, 422, 503}, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    # the tensor model was untouched throughout
    assert listing[IRIS]["status"] == "ready"
