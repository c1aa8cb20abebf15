"""The one place that calls torch.onnx.export for text models (BERT-style inputs)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
TOKENIZER_FILES = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
]


class OutputSelector:
    """Factory for a torch module that takes positional inputs and returns one named output."""

    @staticmethod
    def wrap(model: Any, output: str, input_names: Sequence[str] = TEXT_INPUTS) -> Any:
        import torch

        names = tuple(input_names)

        class _Select(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, *inputs):  # type: ignore[no-untyped-def]
                out = self.model(**dict(zip(names, inputs, strict=True)), return_dict=True)
                return out[output]

        return _Select().eval()


def export_text_module(
    module: Any,
    dest: Path,
    *,
    output_name: str,
    opset: int = 17,
    output_has_sequence_axis: bool,
    input_names: Sequence[str] = TEXT_INPUTS,
    sample: dict[str, Any] | None = None,
) -> None:
    """Export a module taking token tensors (in `input_names` order) to `dest`.

    `sample` (int64 tensors by input name) drives the trace; the default suits BERT vocabularies.

    Batch and sequence axes are dynamic. The legacy (TorchScript) exporter is used: it is fast
    and exact for BERT-style encoders.
    """
    import torch

    sample = sample or {
        "input_ids": torch.tensor([[101, 7592, 2088, 102], [101, 2023, 102, 0]], dtype=torch.long),
        "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.long),
        "token_type_ids": torch.zeros((2, 4), dtype=torch.long),
    }
    axes: dict[str, dict[int, str]] = {name: {0: "batch", 1: "sequence"} for name in input_names}
    axes[output_name] = {0: "batch", 1: "sequence"} if output_has_sequence_axis else {0: "batch"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            tuple(sample[name] for name in input_names),
            str(dest),
            input_names=list(input_names),
            output_names=[output_name],
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
        )


def export_image_module(
    module: Any,
    dest: Path,
    *,
    output_names: Sequence[str],
    height: int,
    width: int,
    opset: int = 17,
    input_name: str = "pixel_values",
) -> None:
    """Export a module taking one float pixel tensor [batch, 3, height, width] to `dest`.

    The batch axis is dynamic (and every output's first axis with it); height and width are
    fixed, as the model's preprocessing (resize, crop) makes every image that size.
    """
    import torch

    sample = torch.rand(2, 3, height, width)
    axes: dict[str, dict[int, str]] = {input_name: {0: "batch"}}
    axes.update({name: {0: "batch"} for name in output_names})
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            (sample,),
            str(dest),
            input_names=[input_name],
            output_names=list(output_names),
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
        )
