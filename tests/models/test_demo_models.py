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
DEMOS = ("minilm", "support-intent", "iris", "shapes", "shapes-embed")
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
    for name in DEMOS:  # the committed, hand-written configs
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
    for name in DEMOS:
        assert validate_model_folder(models / name) == [], name


def _arrow_photo(direction: str) -> bytes:
    """A phone photo of an arrow drawn on paper: landscape sensor pixels + EXIF Orientation 6."""
    import io

    from PIL import Image, ImageDraw

    upright = Image.new("RGB", (600, 800), (240, 236, 228))
    draw = ImageDraw.Draw(upright)
    up = [(300, 200), (460, 400), (360, 400), (360, 600), (240, 600), (240, 400), (140, 400)]
    draw.polygon(up, fill=(20, 30, 90))
    turn = {"arrow_up": None, "arrow_down": Image.Transpose.ROTATE_180}
    if turn[direction] is not None:
        upright = upright.transpose(turn[direction])
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    upright.transpose(Image.Transpose.ROTATE_90).save(out, "JPEG", quality=90, exif=exif)
    return out.getvalue()


def test_shapes_demo_is_accurate_and_reads_phone_photos_upright(demo_repo) -> None:
    from origin.engine.vision import ImageItem
    from origin.repository.config import ImageConfig
    from origin.repository.loader import load_version
    from outpost.modelkit.shapes import PREPROCESSING, SHAPE_LABELS, dataset

    models, stamps = demo_repo
    stamp = stamps["shapes"]["1"]
    assert stamp["test_accuracy"] >= 0.9 and stamp["labels"] == list(SHAPE_LABELS)
    # The committed config preprocesses exactly as the model was trained.
    assert load_model_config(MODELS_ROOT / "shapes").image == ImageConfig.model_validate(
        PREPROCESSING
    )
    pipeline = load_version("shapes", models / "shapes", 1).pipeline
    assert pipeline.labels == list(SHAPE_LABELS)
    x, y = dataset(300, seed=99)  # fresh pictures, never seen in training
    probs = np.stack(pipeline.run_batch([ImageItem(p) for p in x]))
    assert (probs.argmax(axis=1) == y).mean() >= 0.85
    for direction in ("arrow_up", "arrow_down"):
        item = pipeline.prepare(_arrow_photo(direction), 50_000_000)
        (p,) = pipeline.run_batch([item])
        assert SHAPE_LABELS[int(p.argmax())] == direction


def test_shapes_embed_serves_the_same_graph_as_embeddings(demo_repo) -> None:
    from origin.engine.vision import ImageItem
    from origin.repository.loader import load_version
    from outpost.modelkit.shapes import SHAPE_LABELS, dataset

    models, _ = demo_repo
    pipeline = load_version("shapes-embed", models / "shapes-embed", 1).pipeline
    x, y = dataset(140, seed=98)
    vecs = np.stack(pipeline.run_batch([ImageItem(p) for p in x]))
    assert vecs.shape == (140, 48)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    sims = vecs @ vecs.T
    np.fill_diagonal(sims, -np.inf)
    # Search: each picture's nearest other picture shows the same shape.
    assert (y[sims.argmax(axis=1)] == y).mean() >= 0.9
    assert len(set(y.tolist())) == len(SHAPE_LABELS)
