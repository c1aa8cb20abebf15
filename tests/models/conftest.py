"""Fixtures for the model kit tests: tiny Hugging Face checkpoints saved with save_pretrained."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import BertForSequenceClassification, BertModel

from outpost.modelkit.layout import copy_files
from outpost.modelkit.tiny import _tiny_bert_config, minilm_dir
from outpost.modelkit.torch_onnx import TOKENIZER_FILES


def _save_checkpoint(model: torch.nn.Module, folder: Path) -> Path:
    model.save_pretrained(str(folder))
    copy_files(minilm_dir(), folder, TOKENIZER_FILES)
    return folder


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(7)
    encoder = BertModel(_tiny_bert_config(), add_pooling_layer=False).eval()
    labels = ["cats", "dogs"]
    classifier = BertForSequenceClassification(
        _tiny_bert_config(
            num_labels=2,
            id2label=dict(enumerate(labels)),
            label2id={x: i for i, x in enumerate(labels)},
        )
    ).eval()
    return {
        "embeddings": _save_checkpoint(encoder, root / "encoder"),
        "text-classification": _save_checkpoint(classifier, root / "classifier"),
    }
