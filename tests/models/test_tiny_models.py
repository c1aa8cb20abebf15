"""The tiny builders produce real ONNX models other parts' tests can serve."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from tokenizers import Tokenizer

from origin.repository.config import load_model_config
from outpost.modelkit.tiny import (
    TINY_LABELS,
    build_tiny_classifier,
    build_tiny_embeddings,
    build_tiny_tensor,
)

SENTENCES = ["the app crashes on start", "great update, thanks!", "why was I charged twice?"]


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    build_tiny_embeddings(root / "emb", version=1, seed=0)
    build_tiny_embeddings(root / "emb", version=2, seed=1)
    build_tiny_classifier(root / "cls", version=1, seed=0)
    build_tiny_tensor(root / "iris", version=1)
    return root


def _encode(version_dir: Path, sentences: list[str]) -> dict[str, np.ndarray]:
    tok = Tokenizer.from_file(str(version_dir / "tokenizer.json"))
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    enc = tok.encode_batch(sentences)
    return {
        "input_ids": np.array([e.ids for e in enc], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in enc], dtype=np.int64),
    }


def _run(version_dir: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(str(version_dir / "model.onnx"))
    return session.run(None, feeds)


def test_tiny_embeddings_outputs_hidden_states_for_any_batch_and_length(tiny_root: Path) -> None:
    vdir = tiny_root / "emb" / "1"
    for batch in (SENTENCES[:1], SENTENCES):
        feeds = _encode(vdir, batch)
        (hidden,) = _run(vdir, feeds)
        assert hidden.shape == (*feeds["input_ids"].shape, 32)
        assert np.isfinite(hidden).all()
    session = ort.InferenceSession(str(vdir / "model.onnx"))
    assert [i.name for i in session.get_inputs()] == [
        "input_ids",
        "attention_mask",
        "token_type_ids",
    ]
    assert [o.name for o in session.get_outputs()] == ["last_hidden_state"]


def test_tiny_text_models_ship_the_real_minilm_tokenizer(tiny_root: Path) -> None:
    vdir = tiny_root / "emb" / "1"
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "config.json"):
        assert (vdir / name).is_file(), name
    ids = _encode(vdir, ["hello world"])["input_ids"][0].tolist()
    assert ids == [101, 7592, 2088, 102]  # [CLS] hello world [SEP] in the bert-base vocab


def test_different_seeds_give_different_versions(tiny_root: Path) -> None:
    feeds = _encode(tiny_root / "emb" / "1", SENTENCES)
    (v1,) = _run(tiny_root / "emb" / "1", feeds)
    (v2,) = _run(tiny_root / "emb" / "2", feeds)
    assert v1.shape == v2.shape
    assert not np.allclose(v1, v2, atol=1e-3)


def test_same_seed_is_reproducible(tmp_path: Path, tiny_root: Path) -> None:
    again = build_tiny_embeddings(tmp_path / "emb", version=1, seed=0)
    feeds = _encode(again, SENTENCES)
    np.testing.assert_allclose(
        _run(again, feeds)[0], _run(tiny_root / "emb" / "1", feeds)[0], atol=1e-6
    )


def test_tiny_classifier_outputs_logits_with_named_labels(tiny_root: Path) -> None:
    vdir = tiny_root / "cls" / "1"
    (logits,) = _run(vdir, _encode(vdir, SENTENCES))
    assert logits.shape == (len(SENTENCES), len(TINY_LABELS))
    config = json.loads((vdir / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "neutral", "2": "positive"}


def test_tiny_tensor_model_predicts_iris_with_plain_probabilities(tiny_root: Path) -> None:
    vdir = tiny_root / "iris" / "1"
    x = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
    label, probabilities = _run(vdir, {"float_input": x})
    assert label.tolist() == [0, 2]  # a textbook setosa and virginica
    assert probabilities.shape == (2, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_builders_write_task_appropriate_model_yaml(tiny_root: Path) -> None:
    tasks = {"emb": "embeddings", "cls": "text-classification", "iris": "tensor"}
    for name, task in tasks.items():
        assert load_model_config(tiny_root / name).task == task  # the origin's own schema
    assert load_model_config(tiny_root / "emb").max_sequence_length == 64


def test_existing_version_is_never_overwritten_and_no_temp_dirs_remain(
    tiny_root: Path,
) -> None:
    with pytest.raises(FileExistsError):
        build_tiny_embeddings(tiny_root / "emb", version=1, seed=5)
    leftovers = [p.name for p in (tiny_root / "emb").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_origin_loader_accepts_every_tiny_model(tiny_root: Path) -> None:
    from origin.repository.loader import validate_model_folder

    for name in ("emb", "cls", "iris"):
        assert validate_model_folder(tiny_root / name) == [], name
