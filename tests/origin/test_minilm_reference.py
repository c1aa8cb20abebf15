"""The served MiniLM equals the reference PyTorch model (mean pooling + L2), end to end."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.origin.conftest import ROOT, OriginProcess

SENTENCES = [
    "How do I reset my password?",
    "The app crashes every time I open the camera.",
    "I was charged twice for my subscription this month.",
    "Please add a dark mode, my eyes hurt at night.",
    "Great update, everything feels much faster now!",
    "a",
    "Short.",
    " ".join(["A much longer support message that keeps going"] * 8),
]


@pytest.fixture(scope="module")
def minilm_dir_served(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Demo MiniLM (fp32 v1 + int8 v2) built by the models part, cached across sessions."""
    from outpost.modelkit.demo import build_minilm

    models = ROOT / ".outpost" / "cache" / "test-models"
    (models / "minilm").mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "models" / "minilm" / "model.yaml", models / "minilm" / "model.yaml")
    build_minilm(models, ROOT / ".outpost" / "cache" / "models")
    return models


@pytest.fixture(scope="module")
def minilm_origin(
    minilm_dir_served: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OriginProcess]:
    log = tmp_path_factory.mktemp("logs") / "minilm.log"
    proc = OriginProcess(minilm_dir_served, log, OUTPOST_ORIGIN_WATCH="false").start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def torch_reference() -> np.ndarray:
    """Mean-pooled, L2-normalised sentence embeddings straight from the PyTorch checkpoint."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from outpost.modelkit.tiny import minilm_dir

    src = minilm_dir()
    tok = AutoTokenizer.from_pretrained(str(src), local_files_only=True)
    model = AutoModel.from_pretrained(str(src), local_files_only=True).eval()
    enc = tok(SENTENCES, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=1).numpy()


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


def test_served_fp32_minilm_equals_pytorch(minilm_origin: OriginProcess, torch_reference):
    r = httpx.post(
        minilm_origin.url + "/v1/embeddings",
        json={"model": "minilm", "input": SENTENCES},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-model-version"] == "1"  # pinned fp32
    got = np.array([d["embedding"] for d in r.json()["data"]], dtype=np.float32)
    assert got.shape == (len(SENTENCES), 384)
    cos = _cosines(got, torch_reference)
    assert cos.min() >= 0.9999, cos


def test_served_int8_minilm_stays_close_to_pytorch(minilm_origin: OriginProcess, torch_reference):
    req = {
        "inputs": [
            {"name": "text", "shape": [len(SENTENCES)], "datatype": "BYTES", "data": SENTENCES}
        ]
    }
    r = httpx.post(minilm_origin.url + "/v2/models/minilm/versions/2/infer", json=req, timeout=60)
    assert r.status_code == 200, r.text
    (out,) = r.json()["outputs"]
    got = np.array(out["data"], dtype=np.float32).reshape(out["shape"])
    cos = _cosines(got, torch_reference)
    assert cos.mean() >= 0.98 and cos.min() >= 0.95, cos


def test_demo_minilm_reranks_out_of_the_box(minilm_origin: OriginProcess, torch_reference):
    """/v1/rerank on the demo embedding model: cosine of PyTorch's sentence embeddings."""
    query, docs = SENTENCES[0], SENTENCES[1:5]
    r = httpx.post(
        minilm_origin.url + "/v1/rerank",
        json={"model": "minilm", "query": query, "documents": docs, "return_documents": True},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    want = torch_reference[1:5] @ torch_reference[0]
    results = r.json()["results"]
    assert [res["index"] for res in results] == list(np.argsort(-want, kind="stable"))
    np.testing.assert_allclose(
        [res["relevance_score"] for res in results], np.sort(want)[::-1], atol=1e-4
    )
    relevant = httpx.post(
        minilm_origin.url + "/v1/rerank",
        json={
            "model": "minilm",
            "query": "I forgot my password and cannot log in",
            "documents": [
                "Our shop opens at nine on weekdays.",
                "To reset your password, tap 'Forgot password' on the sign-in screen.",
                "The new update adds a dark theme.",
            ],
            "top_n": 1,
        },
        timeout=60,
    ).json()
    assert [res["index"] for res in relevant["results"]] == [1]
