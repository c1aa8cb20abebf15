"""How `model.yaml`'s onnx settings reach onnxruntime's session (on a real tiny model)."""

from __future__ import annotations

from pathlib import Path

import pytest

from origin.engine.onnx_session import create_session
from origin.repository.config import ModelFolderError, OnnxConfig, parse_model_config

SPIN_KEYS = (
    "session.intra_op.allow_spinning",
    "session.force_spinning_stop",
    "session.intra_op.spin_duration_us",
)


def _entries(model: Path, options: OnnxConfig) -> dict[str, str]:
    """The spinning entries the opened session holds (read back from onnxruntime)."""
    held = create_session(model, options).get_session_options()
    out: dict[str, str] = {}
    for key in SPIN_KEYS:
        try:
            out[key] = held.get_session_config_entry(key)
        except Exception:  # onnxruntime raises when the session has no such entry
            continue
    return out


def test_threads_spin_briefly_inside_a_batch_and_stop_when_it_ends(tiny_src: Path) -> None:
    entries = _entries(tiny_src / "emb" / "1" / "model.onnx", OnnxConfig())
    assert entries == {
        "session.intra_op.allow_spinning": "1",
        "session.force_spinning_stop": "1",
        "session.intra_op.spin_duration_us": "100",
    }


def test_spinning_can_be_turned_off_or_left_to_onnxruntime(tiny_src: Path) -> None:
    model = tiny_src / "emb" / "1" / "model.onnx"
    off = _entries(model, OnnxConfig(allow_spinning=False))
    assert off["session.intra_op.allow_spinning"] == "0"
    assert off["session.force_spinning_stop"] == "1"
    ort_default = _entries(model, OnnxConfig(spin_duration_us=None))
    assert "session.intra_op.spin_duration_us" not in ort_default


def test_a_negative_spin_duration_names_the_file_and_field() -> None:
    with pytest.raises(ModelFolderError) as err:
        parse_model_config(
            {"task": "embeddings", "onnx": {"spin_duration_us": -1}}, "models/m/model.yaml"
        )
    assert "models/m/model.yaml" in str(err.value)
    assert "onnx.spin_duration_us" in str(err.value)
