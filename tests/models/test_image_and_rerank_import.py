"""`outpost models import` takes Hugging Face image checkpoints (ViT, ConvNeXt, MobileNet) and
cross-encoders: tiny random ones built here with transformers, exported, verified and served."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from origin.engine.images import Preprocessor
from origin.repository.config import load_model_config
from origin.repository.loader import load_version, validate_model_folder
from outpost.modelkit.errors import CheckpointError, ModelKitError
from outpost.modelkit.importer import import_checkpoint
from outpost.modelkit.vision_export import verification_pictures

LABELS = {0: "cat", 1: "dog", 2: "bird"}


def _vit(labels: bool) -> tuple[Any, Any]:
    from transformers import ViTForImageClassification, ViTImageProcessor, ViTModel

    from outpost.modelkit.tiny import tiny_vit_config

    extra = {"num_labels": 3, "id2label": LABELS, "label2id": {}} if labels else {}
    config = tiny_vit_config(**extra)
    model = ViTForImageClassification(config) if labels else ViTModel(config)
    return model, ViTImageProcessor(size={"height": 32, "width": 32})


def _convnext(labels: bool) -> tuple[Any, Any]:
    from transformers import (
        ConvNextConfig,
        ConvNextForImageClassification,
        ConvNextImageProcessor,
        ConvNextModel,
    )

    extra = {"num_labels": 3, "id2label": LABELS, "label2id": {}} if labels else {}
    config = ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, **extra)
    model = ConvNextForImageClassification(config) if labels else ConvNextModel(config)
    return model, ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=0.875)


def _mobilenet(labels: bool) -> tuple[Any, Any]:
    from transformers import (
        MobileNetV2Config,
        MobileNetV2ForImageClassification,
        MobileNetV2ImageProcessor,
        MobileNetV2Model,
    )

    extra = {"num_labels": 3, "id2label": LABELS, "label2id": {}} if labels else {}
    # A wide initialisation: with the default one a random MobileNet's features vanish (~1e-14).
    config = MobileNetV2Config(
        image_size=32, depth_multiplier=0.35, min_depth=4, initializer_range=0.3, **extra
    )
    model = MobileNetV2ForImageClassification(config) if labels else MobileNetV2Model(config)
    processor = MobileNetV2ImageProcessor(
        size={"shortest_edge": 40}, crop_size={"height": 32, "width": 32}
    )
    return model, processor


FAMILIES = {"vit": _vit, "convnext": _convnext, "mobilenet_v2": _mobilenet}


def _checkpoint(root: Path, family: str, task: str) -> tuple[Path, Any, Any]:
    torch.manual_seed(11)
    model, processor = FAMILIES[family](task == "image-classification")
    model = model.eval()
    folder = root / f"{family}-{task}"
    model.save_pretrained(str(folder))
    processor.save_pretrained(str(folder))
    return folder, model, processor


@pytest.mark.parametrize("task", ["image-classification", "image-embeddings"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_image_checkpoint_imports_and_serves_what_pytorch_computes(
    tmp_path: Path, family: str, task: str
) -> None:
    src, model, processor = _checkpoint(tmp_path / "ckpt", family, task)
    report = import_checkpoint(src, tmp_path / "models", "vision", task=task)
    assert report.export.verify_images == 8
    assert report.export.pixels_max_abs_diff is not None
    assert report.export.pixels_max_abs_diff < 1e-4  # our preprocessing = the HF processor's
    config = load_model_config(tmp_path / "models" / "vision")
    assert config.task == task and config.image is not None
    assert validate_model_folder(tmp_path / "models" / "vision") == []

    # Independent check: what the origin's pipeline serves against PyTorch + the processor.
    pipeline: Any = load_version("vision", tmp_path / "models" / "vision", 1).pipeline
    pictures = verification_pictures()[:4]
    served = pipeline.run_batch([pipeline.prepare_decoded(p) for p in pictures])
    with torch.no_grad():
        out = model(**processor(images=pictures, return_tensors="pt"), return_dict=True)
    if task == "image-classification":
        logits = out.logits.numpy().astype(np.float64)
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        np.testing.assert_allclose(np.stack(served), probs, atol=1e-4)
        assert pipeline.labels == ["cat", "dog", "bird"]
    else:
        ref = out.pooler_output if out.last_hidden_state.ndim == 4 else out.last_hidden_state[:, 0]
        ref = ref.numpy().reshape(len(pictures), -1)
        ref /= np.linalg.norm(ref, axis=1, keepdims=True)
        np.testing.assert_allclose(np.stack(served), ref, atol=1e-4)


def test_convnext_preprocessing_is_resize_then_crop(tmp_path: Path) -> None:
    src, _, _ = _checkpoint(tmp_path, "convnext", "image-classification")
    report = import_checkpoint(src, tmp_path / "models", "cn", task="image-classification")
    image = load_model_config(tmp_path / "models" / "cn").image
    assert image is not None and image.resize is not None and image.crop is not None
    assert image.resize.shortest_edge == 36 and (image.crop.height, image.crop.width) == (32, 32)
    assert image.resample == "bicubic"  # what ConvNeXt's processor uses
    assert report.export.max_abs_logit_diff is not None
    assert Preprocessor(image, np.dtype(np.float32)).output_hw() == (32, 32)


def test_image_import_refuses_a_checkpoint_without_its_processor(tmp_path: Path) -> None:
    src, _, _ = _checkpoint(tmp_path, "vit", "image-classification")
    (src / "preprocessor_config.json").unlink()
    with pytest.raises(CheckpointError, match=r"preprocessor_config\.json: missing"):
        import_checkpoint(src, tmp_path / "models", "x", task="image-classification")
    with pytest.raises(ModelKitError, match="--int8"):
        import_checkpoint(src, tmp_path / "models", "x", task="image-embeddings", int8=True)


def test_cross_encoder_imports_as_a_rerank_model(tmp_path: Path) -> None:
    from transformers import BertForSequenceClassification

    from outpost.modelkit.layout import copy_files
    from outpost.modelkit.tiny import _tiny_bert_config, minilm_dir
    from outpost.modelkit.torch_onnx import TOKENIZER_FILES

    torch.manual_seed(5)
    model = BertForSequenceClassification(_tiny_bert_config(num_labels=1)).eval()
    src = tmp_path / "cross-encoder"
    model.save_pretrained(str(src))
    copy_files(minilm_dir(), src, TOKENIZER_FILES)
    report = import_checkpoint(src, tmp_path / "models", "ce", task="rerank")
    assert report.export.verify_pairs == 6
    assert report.export.max_abs_logit_diff is not None
    assert report.export.max_abs_logit_diff <= 1e-3
    assert load_model_config(tmp_path / "models" / "ce").task == "rerank"
    pipeline: Any = load_version("ce", tmp_path / "models" / "ce", 1).pipeline
    scores = pipeline.run_batch(pipeline.tokenize_pairs("reset password", ["reset it", "hello"]))
    tok = pipeline.hf_tokenizer
    enc = tok(["reset password"] * 2, ["reset it", "hello"], padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**enc).logits[:, 0].numpy()
    np.testing.assert_allclose(scores, 1 / (1 + np.exp(-logits)), atol=1e-5)
