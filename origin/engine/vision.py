"""Image pipelines: an encoded image in, softmax scores or an embedding out.

`prepare` (run in the origin's image-decoding threads, never on the event loop) decodes and
preprocesses one upload into an `ImageItem`; the batcher groups items of equal tensor shape, so
images of different sizes (a model without a fixed crop) never share a batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from origin.engine.images import Preprocessor, decode_image
from origin.engine.tasks import Classifier, _read_hf_config, _SessionPipeline, l2_normalize, softmax
from origin.repository.config import ModelConfig, ModelFolderError

_PIXEL_TYPES = {"FP32": np.float32, "FP16": np.float16, "UINT8": np.uint8}


@dataclass(frozen=True, slots=True)
class ImageItem:
    """One preprocessed image; `key` (its tensor shape) keeps different sizes apart."""

    pixels: np.ndarray

    @property
    def key(self) -> tuple[int, ...]:
        return self.pixels.shape

    @property
    def cost(self) -> int:
        return 1


class ImagePipeline(_SessionPipeline):
    """What both image tasks share: the pixel input, preprocessing and batching."""

    task = "image"
    padded_cost = False
    keyed_batches = True

    def __init__(self, config: ModelConfig, session: ort.InferenceSession, folder: Path) -> None:
        super().__init__(config, session, folder)
        assert config.image is not None  # the config's validator requires it for image tasks
        self.hf_config = _read_hf_config(folder)
        self.image = config.image
        yaml_file = folder.parent / "model.yaml"
        by_name = {i.name: i for i in self.inputs}
        if config.image.input_name is not None:
            if config.image.input_name not in by_name:
                raise ModelFolderError(
                    yaml_file,
                    "image.input_name",
                    f"no input {config.image.input_name!r}; the graph has {sorted(by_name)}",
                )
            info = by_name[config.image.input_name]
        elif len(self.inputs) == 1:
            info = self.inputs[0]
        else:
            raise ModelFolderError(
                yaml_file,
                "image.input_name",
                f"the graph has several inputs {sorted(by_name)}; name the pixel input",
            )
        if info.datatype not in _PIXEL_TYPES:
            raise ModelFolderError(
                folder / "model.onnx",
                "inputs",
                f"pixel input {info.name!r} is {info.datatype}; expected FP32, FP16 or UINT8",
            )
        if len(info.shape) != 4:
            raise ModelFolderError(
                folder / "model.onnx",
                "inputs",
                f"pixel input {info.name!r} has shape {list(info.shape)}; expected 4 dims "
                f"({config.image.layout})",
            )
        self.input_name = info.name
        self.preprocessor = Preprocessor(config.image, np.dtype(_PIXEL_TYPES[info.datatype]))
        normalizes = tuple(config.image.mean) != (0, 0, 0) or tuple(config.image.std) != (1, 1, 1)
        if self.preprocessor.raw and normalizes:
            raise ModelFolderError(
                yaml_file,
                "image.mean",
                f"pixel input {info.name!r} is UINT8 (0-255 as they are); mean and std only "
                "apply to FP32 or FP16 inputs",
            )
        self._check_shape(list(info.shape), yaml_file)
        self.output_name = self._pick_output()

    def _check_shape(self, shape: list[int], yaml_file: Path) -> None:
        layout = self.image.layout
        channels, height, width = (shape[1], shape[2], shape[3])
        if layout == "nhwc":
            height, width, channels = shape[1], shape[2], shape[3]
        if channels not in (-1, 3):
            raise ModelFolderError(
                yaml_file,
                "image.layout",
                f"with layout {layout} the graph's input {list(shape)} has {channels} channels; "
                "expected 3 (is the layout right?)",
            )
        fixed = self.preprocessor.output_hw()
        if fixed is None:
            if height > 0 or width > 0:
                raise ModelFolderError(
                    yaml_file,
                    "image.crop",
                    f"the graph takes {height}x{width} images; give a crop (or an exact resize) "
                    "of that size",
                )
            return
        if (height > 0 and height != fixed[0]) or (width > 0 and width != fixed[1]):
            raise ModelFolderError(
                yaml_file,
                "image.crop",
                f"preprocessing makes {fixed[0]}x{fixed[1]} images but the graph takes "
                f"{height}x{width}",
            )

    # -- pre-processing (the origin's image threads)
    def prepare(self, data: bytes, max_pixels: int) -> ImageItem:
        """Decode and preprocess one upload (raises images.ImageError)."""
        img = decode_image(data, max_pixels=max_pixels, draft=self.preprocessor.draft_size)
        return self.prepare_decoded(img)

    def prepare_decoded(self, img: Image.Image) -> ImageItem:
        return ImageItem(self.preprocessor(img))

    def forward(self, items: Sequence[ImageItem]) -> np.ndarray:
        batch = np.stack([it.pixels for it in items])
        (out,) = self.session.run([self.output_name], {self.input_name: batch})
        return np.asarray(out)

    def _warm_items(self) -> list[ImageItem]:
        rng = np.random.default_rng(0)
        pixels = rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
        img = Image.fromarray(pixels, "RGB")
        turned = img.transpose(Image.Transpose.ROTATE_90)
        return [self.prepare_decoded(img), self.prepare_decoded(turned)]


class ImageClassificationPipeline(Classifier, ImagePipeline):
    """Image classification: softmax over logits, one label per class."""

    task = "image-classification"

    def warm_up(self) -> None:
        items = self._warm_items()
        self._learn_labels(self.forward(items[:1]))
        self.run_batch(items)

    def run_batch(self, items: Sequence[ImageItem]) -> list[np.ndarray]:
        return softmax(self.forward(items))


class ImageEmbeddingsPipeline(ImagePipeline):
    """One vector per image: a pooled output as is, CLS or mean over patch tokens, or the mean
    over a feature map; L2-normalised with `normalize`."""

    task = "image-embeddings"
    dimensions = -1

    def _preferred_outputs(self) -> Sequence[str]:
        return ("image_embeds", "embedding", "pooler_output", "last_hidden_state")

    def warm_up(self) -> None:
        items = self._warm_items()
        out = self.forward(items[:1])
        if out.ndim not in (2, 3, 4):
            raise ModelFolderError(
                self.folder / "model.onnx",
                "output_name",
                f"embedding output {self.output_name!r} has rank {out.ndim}; expected 2-4",
            )
        self.run_batch(items)
        self.dimensions = int(self.run_batch(items[:1])[0].shape[0])

    def run_batch(self, items: Sequence[ImageItem]) -> list[np.ndarray]:
        out = self.forward(items).astype(np.float32)
        if out.ndim == 3:  # [n, tokens, dim]
            pooled = out[:, 0, :] if self.config.pooling == "cls" else out.mean(axis=1)
        elif out.ndim == 4:  # a feature map [n, channels, h, w]: average over its positions
            pooled = out.mean(axis=(2, 3))
        else:
            pooled = out
        if self.config.normalize:
            pooled = l2_normalize(pooled)
        return list(np.ascontiguousarray(pooled, dtype=np.float32))
