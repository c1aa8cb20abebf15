"""model.yaml schema and offline folder validation name the file and field at fault."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from origin.repository import ModelFolderError, load_model_config, validate_model_folder
from origin.repository.config import ModelConfig


def test_minimal_config_fills_documented_defaults(tmp_path: Path):
    (tmp_path / "model.yaml").write_text("task: embeddings\n")
    cfg = load_model_config(tmp_path)
    assert cfg.task == "embeddings" and cfg.pooling == "mean" and cfg.normalize
    assert cfg.version_policy == "latest" and cfg.batching.max_batch_size == 32
    assert cfg.cache_ttl_seconds == 3600


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("task: translation\n", "task"),
        ("task: embeddings\npoolng: mean\n", "poolng"),
        ("task: embeddings\nbatching: {max_batch_size: 0}\n", "batching.max_batch_size"),
        ("task: embeddings\nversion_policy: pinned\n", None),
        ("task: [unclosed\n", None),
        ("- just\n- a list\n", None),
    ],
)
def test_invalid_config_names_file_and_field(tmp_path: Path, text: str, field: str | None):
    (tmp_path / "model.yaml").write_text(text)
    with pytest.raises(ModelFolderError) as info:
        load_model_config(tmp_path / "model.yaml")
    assert info.value.file.endswith("model.yaml")
    assert info.value.field == field
    assert info.value.message


def test_version_level_config_overrides_model_level(tmp_path: Path):
    (tmp_path / "model.yaml").write_text("task: embeddings\ndescription: base\n")
    (tmp_path / "2").mkdir()
    (tmp_path / "2" / "model.yaml").write_text("description: int8\nbatching: {max_batch_size: 4}\n")
    cfg = load_model_config(tmp_path / "model.yaml", overrides=tmp_path / "2" / "model.yaml")
    assert cfg.description == "int8" and cfg.batching.max_batch_size == 4
    assert cfg.batching.max_queue_size == ModelConfig(task="tensor").batching.max_queue_size


def test_good_tiny_folders_validate(tiny_src: Path):
    for name in ("emb", "cls", "iris"):
        assert validate_model_folder(tiny_src / name) == []


def _copy(tiny_src: Path, tmp_path: Path, name: str = "emb") -> Path:
    dst = tmp_path / name
    shutil.copytree(tiny_src / name, dst)
    return dst


def test_corrupt_onnx_is_reported(tiny_src: Path, tmp_path: Path):
    d = _copy(tiny_src, tmp_path)
    (d / "2" / "model.onnx").write_bytes(b"garbage")
    (err,) = validate_model_folder(d)
    assert err.file.endswith("2/model.onnx") and "onnxruntime" in err.message


def test_tokenizer_vocab_larger_than_embedding_table_is_reported(tiny_src: Path, tmp_path: Path):
    d = _copy(tiny_src, tmp_path)
    tok_path = d / "1" / "tokenizer.json"
    tok = json.loads(tok_path.read_text())
    n = len(tok["model"]["vocab"])
    tok["model"]["vocab"].update({f"extra{i}": n + i for i in range(10)})
    tok_path.write_text(json.dumps(tok))
    (err,) = validate_model_folder(d)
    assert err.file.endswith("1/tokenizer.json") and err.field == "vocab_size"


def test_missing_tokenizer_is_reported(tiny_src: Path, tmp_path: Path):
    d = _copy(tiny_src, tmp_path)
    for f in (d / "1").iterdir():
        if f.name != "model.onnx" and f.name != "config.json":
            f.unlink()
    errors = validate_model_folder(d / "1")
    assert len(errors) == 1 and "tokenizer" in errors[0].message


def test_text_task_on_a_tensor_graph_names_the_missing_input(tiny_src: Path, tmp_path: Path):
    d = _copy(tiny_src, tmp_path, "iris")
    (d / "model.yaml").write_text("task: embeddings\n")
    (err,) = validate_model_folder(d)
    assert err.field == "inputs" and "input_ids" in err.message


def test_label_count_mismatch_is_reported(tiny_src: Path, tmp_path: Path):
    d = _copy(tiny_src, tmp_path, "cls")
    (d / "model.yaml").write_text("task: text-classification\nlabels: [a, b]\n")
    (err,) = validate_model_folder(d)
    assert err.field == "labels" and "3 classes" in err.message


def test_folder_without_versions_is_reported(tmp_path: Path):
    (tmp_path / "model.yaml").write_text("task: tensor\n")
    (err,) = validate_model_folder(tmp_path)
    assert "version" in err.message


def test_matryoshka_sizes_larger_than_the_embedding_are_reported(tiny_src: Path, tmp_path: Path):
    d = _copy(tiny_src, tmp_path)
    config = d / "model.yaml"
    config.write_text(config.read_text() + "matryoshka_dimensions: [16, 64]\n")
    errors = validate_model_folder(d)
    assert errors and all(e.field == "matryoshka_dimensions" for e in errors)
    assert errors[0].file.endswith("model.yaml") and "[64] exceed" in errors[0].message
