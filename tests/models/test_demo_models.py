"""The demo repository: MiniLM matches PyTorch, int8 stays close, classifiers are accurate.

Built once per session into the shared `.outpost/cache/models` cache (the origin's reference
test uses the same cache), then installed into a temp models folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from transformers import AutoModel

from origin.repository.config import load_model_config
from outpost.modelkit.demo import (
    INTENT_DATA,
    INTENT_LABELS,
    MODELS_ROOT,
    STAMP,
    build_demo_models,
)
from outpost.modelkit.export import cosine_rows, encode, load_tokenizer, mean_pool
from outpost.modelkit.tiny import minilm_dir

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".outpost" / "cache" / "models"
SENTENCES = [
    "How do I reset my password?",
    "The checkout page crashes on Android when I rotate the phone.",
    "A cat sits on the windowsill watching the rain.",
    "Shipping was fast and the packaging was great.",
    "Tell me about the weather tomorrow in Lisbon",
    "no",
]


@pytest.fixture(scope="module")
def demo_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    models = tmp_path_factory.mktemp("models")
    for name in ("minilm", "support-intent", "iris"):  # the committed, hand-written configs
        (models / name).mkdir()
        (models / name / "model.yaml").write_bytes((MODELS_ROOT / name / "model.yaml").read_bytes())
    stamps = build_demo_models(models, cache_dir=CACHE)
    return models, stamps


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _pooled_onnx(version_dir: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    (hidden,) = _session(version_dir / "model.onnx").run(None, feeds)
    return mean_pool(hidden, feeds["attention_mask"])


def test_committed_model_yaml_files_validate() -> None:
    assert load_model_config(MODELS_ROOT / "minilm").pinned_version == 1
    assert load_model_config(MODELS_ROOT / "support-intent").task == "text-classification"
    assert load_model_config(MODELS_ROOT / "iris").task == "tensor"


def test_minilm_fp32_matches_sentence_transformers_pooling(demo_repo) -> None:
    models, _ = demo_repo
    tokenizer = load_tokenizer(minilm_dir())
    feeds = encode(tokenizer, SENTENCES)
    model = AutoModel.from_pretrained(str(minilm_dir()), local_files_only=True).eval()
    with torch.no_grad():
        hidden = model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).last_hidden_state
    reference = mean_pool(hidden.numpy(), feeds["attention_mask"])
    got = _pooled_onnx(models / "minilm" / "1", feeds)
    assert got.shape == (len(SENTENCES), 384)
    assert cosine_rows(reference, got).min() >= 0.9999


def test_minilm_int8_is_a_close_smaller_second_version(demo_repo) -> None:
    models, stamps = demo_repo
    feeds = encode(load_tokenizer(models / "minilm" / "2"), SENTENCES)
    cos = cosine_rows(
        _pooled_onnx(models / "minilm" / "1", feeds), _pooled_onnx(models / "minilm" / "2", feeds)
    )
    assert cos.mean() >= 0.98
    fp32_size = (models / "minilm" / "1" / "model.onnx").stat().st_size
    assert (models / "minilm" / "2" / "model.onnx").stat().st_size < fp32_size / 3
    assert stamps["minilm"]["2"]["int8"]["mean_cosine"] >= 0.98
    override = load_model_config(
        models / "minilm", overrides=models / "minilm" / "2" / "model.yaml"
    )
    assert "int8" in override.description


def test_support_intent_classifies_held_out_messages(demo_repo) -> None:
    models, stamps = demo_repo
    vdir = models / "support-intent" / "1"
    config = json.loads((vdir / "config.json").read_text())
    labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    assert labels == list(INTENT_LABELS)
    rows = [json.loads(x) for x in (INTENT_DATA / "test.jsonl").read_text().splitlines()]
    feeds = encode(load_tokenizer(vdir), [r["text"] for r in rows])
    (logits,) = _session(vdir / "model.onnx").run(None, feeds)
    predicted = [labels[i] for i in logits.argmax(axis=1)]
    accuracy = np.mean([p == r["label"] for p, r in zip(predicted, rows, strict=True)])
    assert accuracy >= 0.85
    assert stamps["support-intent"]["1"]["test_accuracy"] == pytest.approx(accuracy)


def test_iris_demo_is_accurate(demo_repo) -> None:
    from sklearn.datasets import load_iris

    models, _ = demo_repo
    x, y = load_iris(return_X_y=True)
    label, probabilities = _session(models / "iris" / "1" / "model.onnx").run(
        None, {"float_input": x.astype(np.float32)}
    )
    assert (label == y).mean() >= 0.9
    assert probabilities.shape == (150, 3)


def test_rebuild_is_a_no_op_and_a_stale_stamp_is_rebuilt(demo_repo) -> None:
    models, _ = demo_repo
    onnx = models / "iris" / "1" / "model.onnx"
    before = os.stat(onnx).st_mtime_ns
    build_demo_models(models, cache_dir=CACHE)
    assert os.stat(onnx).st_mtime_ns == before
    stamp_path = models / "iris" / "1" / STAMP
    stamp = json.loads(stamp_path.read_text())
    stamp_path.write_text(json.dumps({**stamp, "fingerprint": "stale"}))
    build_demo_models(models, cache_dir=CACHE)
    assert json.loads(stamp_path.read_text())["fingerprint"] == stamp["fingerprint"]
    assert sorted(p.name for p in (models / "iris").iterdir()) == ["1", "model.yaml"]


def test_origin_loader_accepts_every_demo_model(demo_repo) -> None:
    from origin.repository.loader import validate_model_folder

    models, _ = demo_repo
    for name in ("minilm", "support-intent", "iris"):
        assert validate_model_folder(models / name) == [], name
