"""`import_checkpoint` turns a local Hugging Face checkpoint into a verified, served version."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from transformers import BertModel

from origin.repository.config import load_model_config
from outpost.modelkit.errors import CheckpointError, ModelExistsError, ModelKitError
from outpost.modelkit.export import encode, load_tokenizer, mean_pool
from outpost.modelkit.importer import import_checkpoint

SENTENCES = ["my invoice is wrong", "the map screen freezes on iOS 18", "thanks!"]


@pytest.fixture(scope="module")
def imported(checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    models = tmp_path_factory.mktemp("models")
    first = import_checkpoint(checkpoints["embeddings"], models, "enc", task="embeddings")
    second = import_checkpoint(
        checkpoints["embeddings"], models, "enc", task="embeddings", int8=True
    )
    return models, first, second


def test_import_writes_a_valid_model_folder(imported) -> None:
    models, first, _ = imported
    config = load_model_config(models / "enc")
    assert config.task == "embeddings"
    assert config.pooling == "mean"
    assert first.model_yaml_written
    vdir = models / "enc" / "1"
    for name in ("model.onnx", "tokenizer.json", "vocab.txt", "config.json"):
        assert (vdir / name).is_file(), name


def test_imported_onnx_matches_pytorch(imported, checkpoints: dict[str, Path]) -> None:
    models, first, _ = imported
    assert first.export.min_cosine is not None and first.export.min_cosine >= 0.9999
    # Independent check: our own PyTorch run against the served ONNX file.
    src = checkpoints["embeddings"]
    feeds = encode(load_tokenizer(src), SENTENCES)
    model = BertModel.from_pretrained(str(src), attn_implementation="eager").eval()
    with torch.no_grad():
        ref = model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).last_hidden_state
    session = ort.InferenceSession(str(models / "enc" / "1" / "model.onnx"))
    (got,) = session.run(None, feeds)
    np.testing.assert_allclose(got, ref.numpy(), atol=1e-4)
    pooled = mean_pool(got, feeds["attention_mask"])
    assert pooled.shape == (len(SENTENCES), 32)


def test_versions_increment_and_int8_drift_is_reported(imported) -> None:
    models, first, second = imported
    assert (first.version, second.version) == (1, 2)
    assert not second.model_yaml_written
    report = second.int8_report
    assert report is not None
    assert 0.9 <= report.min_cosine <= report.mean_cosine <= 1.0 + 1e-9
    assert report.int8_bytes < report.fp32_bytes
    assert sorted(p.name for p in (models / "enc").iterdir()) == ["1", "2", "model.yaml"]


def test_import_classifier_keeps_labels_and_matches_logits(
    checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    report = import_checkpoint(
        checkpoints["text-classification"], tmp_path, "pets", task="text-classification"
    )
    assert report.export.max_abs_logit_diff is not None
    assert report.export.max_abs_logit_diff <= 1e-3
    config = json.loads((tmp_path / "pets" / "1" / "config.json").read_text())
    assert config["id2label"] == {"0": "cats", "1": "dogs"}
    assert load_model_config(tmp_path / "pets").task == "text-classification"


def test_import_refuses_folder_without_config_naming_the_file(tmp_path: Path) -> None:
    src = tmp_path / "not-a-checkpoint"
    src.mkdir()
    (src / "notes.txt").write_text("hello")
    with pytest.raises(CheckpointError, match=r"config\.json: missing"):
        import_checkpoint(src, tmp_path / "models", "x", task="embeddings")
    assert not (tmp_path / "models" / "x").exists() or not any(
        (tmp_path / "models" / "x").iterdir()
    )


def test_import_refuses_checkpoint_without_weights(
    checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    src = tmp_path / "no-weights"
    shutil.copytree(checkpoints["embeddings"], src)
    (src / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no weights file"):
        import_checkpoint(src, tmp_path / "models", "x", task="embeddings")


def test_import_refuses_bad_name_task_mismatch_and_existing_version(
    checkpoints: dict[str, Path], imported
) -> None:
    models, _, _ = imported
    src = checkpoints["embeddings"]
    with pytest.raises(ModelKitError, match="--name"):
        import_checkpoint(src, models, "../escape", task="embeddings")
    with pytest.raises(ModelKitError, match="field 'task'"):
        import_checkpoint(src, models, "enc", task="text-classification")
    with pytest.raises(ModelExistsError, match="already exists"):
        import_checkpoint(src, models, "enc", task="embeddings", version=1)
    with pytest.raises(ModelKitError, match="--task"):
        import_checkpoint(src, models, "other", task="tensor")
    leftovers = [p.name for p in (models / "enc").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_origin_loader_accepts_imported_versions(imported) -> None:
    from origin.repository.loader import validate_model_folder

    models, _, _ = imported
    assert validate_model_folder(models / "enc") == []
