"""The `model.yaml` schema: one small file per model folder, validated with pydantic.

A model exported the ordinary way (optimum / `torch.onnx.export`) needs only `task` plus what
differs from the defaults. Example::

    task: embeddings            # embeddings | text-classification | rerank |
                                # image-classification | image-embeddings | tensor
    description: all-MiniLM-L6-v2 sentence embeddings
    version_policy: latest      # latest | pinned  (pinned needs pinned_version)
    pinned_version: null
    max_sequence_length: 256    # capped by the tokenizer's / model's own limit
    truncation: truncate        # truncate | reject (reject -> 422 for too-long inputs)
    pooling: mean               # embeddings: mean | cls
    normalize: true             # embeddings: L2-normalise the pooled vector
    matryoshka_dimensions: null # embeddings: sizes `dimensions` may cut to, e.g. [256, 128]
    labels: null                # classification: else config.json id2label, else LABEL_i
    top_k: null                 # classification: default number of labels returned
    score: sigmoid              # rerank: sigmoid | raw (what relevance_score is made of)
    image: null                 # image tasks: preprocessing (ImageConfig below)
    output_name: null           # which ONNX output to use (default: by task, see below)
    batching: {max_batch_size: 32, max_queue_delay_ms: 2, max_batch_tokens: 1024,
               max_batch_ms: 100, max_queue_size: 256, max_concurrent_batches: 1}
    cache_ttl_seconds: 3600     # Cache-Control max-age on inference responses
    cache_scope: subject        # subject | shared: who the edge may answer from its cache
    inputs: null                # tensor: optional declared inputs, else read from the graph
    outputs: null
    onnx: {intra_op_threads: null, inter_op_threads: 1, graph_optimization: all,
           allow_spinning: true, spin_duration_us: 100}

A version folder may carry its own `model.yaml`; its keys override the model-level file for
that version only (e.g. an int8 version with a different description).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

CONFIG_FILE = "model.yaml"

Task = Literal[
    "embeddings",
    "text-classification",
    "rerank",
    "image-classification",
    "image-embeddings",
    "tensor",
]
TEXT_TASKS: frozenset[str] = frozenset({"embeddings", "text-classification", "rerank"})
IMAGE_TASKS: frozenset[str] = frozenset({"image-classification", "image-embeddings"})


class ModelFolderError(Exception):
    """A problem in a model folder, naming the file and (when known) the field at fault."""

    def __init__(self, file: str | Path, field: str | None, message: str) -> None:
        self.file = str(file)
        self.field = field
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.file}: {self.field}" if self.field else self.file
        return f"{where}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "field": self.field, "message": self.message}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BatchingConfig(_Strict):
    """Dynamic batching knobs for one model version."""

    max_batch_size: int = Field(32, ge=1, le=4096, description="Most inputs run in one ORT call.")
    max_queue_delay_ms: float = Field(
        2.0,
        ge=0,
        le=1000,
        description="Longest wait for more inputs to fill a batch (never applied to a lone "
        "request).",
    )
    max_batch_tokens: int = Field(
        1024,
        ge=1,
        description="Token budget per batch, counted after padding (text tasks). On a CPU a "
        "batch's throughput stops growing long before this and then falls, once a layer's "
        "activations (about 14 KB per token for MiniLM) outgrow the cache: 32 inputs of 128 "
        "tokens ran slower per input than 8. Many short inputs still fill `max_batch_size`.",
    )
    max_concurrent_batches: int = Field(
        1,
        ge=1,
        le=16,
        description="Batches of this version running at once (2 overlaps one batch's "
        "inference with the next one's arrival; each batch already uses every core).",
    )
    max_batch_ms: float = Field(
        100.0,
        ge=1,
        le=60_000,
        description="Most work one batch may hold, in milliseconds at the time per token (per "
        "item, for models that do not pad) learned from the batches that ran: a caller that "
        "starts waiting behind another's flood waits about this long. 100 ms holds MiniLM's "
        "fastest batches on 2 cores (32 short or 4 long inputs; see the models guide).",
    )
    max_queue_size: int = Field(
        256,
        ge=1,
        description="Inputs waiting at most; beyond it requests get 429 + Retry-After, but a "
        "subject holding less than its fair share (this / subjects waiting) is still admitted, "
        "up to twice this in all.",
    )


class OnnxConfig(_Strict):
    """onnxruntime session options."""

    intra_op_threads: int | None = Field(
        None, ge=0, description="Threads inside one operator; null = number of CPU cores."
    )
    inter_op_threads: int = Field(1, ge=0, description="Threads across operators (sequential).")
    graph_optimization: Literal["disable", "basic", "extended", "all"] = Field(
        "all", description="onnxruntime graph optimization level."
    )
    allow_spinning: bool = Field(
        True,
        description="Let ORT's threads busy-wait briefly for the next operator's work inside a "
        "batch instead of sleeping: a lone request answers about a fifth sooner. They stop "
        "when the batch ends, so an idle origin does not spin.",
    )
    spin_duration_us: int | None = Field(
        100,
        ge=0,
        le=1_000_000,
        description="With allow_spinning: how long an idle thread spins before it sleeps, in "
        "microseconds; null = onnxruntime's own default.",
    )


class TensorSpec(_Strict):
    """A declared input or output of a tensor model (OIP datatype names, -1 = dynamic dim)."""

    name: str = Field(description="Tensor name in the ONNX graph.")
    datatype: str | None = Field(None, description="OIP datatype, e.g. FP32, INT64.")
    shape: list[int] | None = Field(None, description="Shape with -1 for dynamic dims.")


class ResizeConfig(_Strict):
    """Resize step: the shortest edge to a length (aspect kept), or to an exact size."""

    shortest_edge: int | None = Field(
        None, ge=1, le=4096, description="Scale so the shorter side has this length."
    )
    height: int | None = Field(None, ge=1, le=4096, description="Exact height (with width).")
    width: int | None = Field(None, ge=1, le=4096, description="Exact width (with height).")

    @model_validator(mode="after")
    def _one_kind(self) -> ResizeConfig:
        exact = self.height is not None or self.width is not None
        if self.shortest_edge is not None and exact:
            raise ValueError("give shortest_edge, or height and width, not both")
        if self.shortest_edge is None and (self.height is None or self.width is None):
            raise ValueError("give shortest_edge, or both height and width")
        return self


class CropConfig(_Strict):
    """Center crop to height x width (after the resize)."""

    height: int = Field(ge=1, le=4096, description="Crop height in pixels.")
    width: int = Field(ge=1, le=4096, description="Crop width in pixels.")


class ImageConfig(_Strict):
    """How an uploaded image becomes the model's input tensor (image tasks), in this order:
    decode, apply EXIF orientation, convert to RGB, resize, center crop, scale, normalize,
    order channels, lay out."""

    resize: ResizeConfig | None = Field(None, description="Resize step (none: keep the size).")
    crop: CropConfig | None = Field(None, description="Center crop after the resize.")
    resample: Literal["nearest", "box", "bilinear", "hamming", "bicubic", "lanczos"] = Field(
        "bilinear", description="Pillow resampling filter for the resize."
    )
    rescale: float = Field(
        1 / 255, gt=0, description="Multiply 0-255 pixel values by this (float inputs)."
    )
    mean: tuple[float, float, float] = Field(
        (0.0, 0.0, 0.0), description="Per-channel mean subtracted after rescaling (R, G, B)."
    )
    std: tuple[float, float, float] = Field(
        (1.0, 1.0, 1.0), description="Per-channel standard deviation divided by (R, G, B)."
    )
    channel_order: Literal["rgb", "bgr"] = Field(
        "rgb", description="Channel order the model expects."
    )
    layout: Literal["nchw", "nhwc"] = Field("nchw", description="Tensor layout the model expects.")
    input_name: str | None = Field(
        None, description="The graph input that takes the pixels (default: its only input)."
    )
    jpeg_draft: bool = Field(
        True,
        description="Let libjpeg decode large JPEGs at 1/2, 1/4 or 1/8 scale when the resize "
        "shrinks them at least that much (several times faster for phone photos; pixels differ "
        "slightly from a full decode). false = always decode in full.",
    )

    @model_validator(mode="after")
    def _check(self) -> ImageConfig:
        if any(s <= 0 for s in self.std):
            raise ValueError("std values must be > 0")
        if self.crop is not None and self.resize is not None:
            r = self.resize
            height = r.height if r.shortest_edge is None else r.shortest_edge
            width = r.width if r.shortest_edge is None else r.shortest_edge
            if self.crop.height > (height or 0) or self.crop.width > (width or 0):
                raise ValueError("crop must not be larger than the resized image")
        return self


class ModelConfig(_Strict):
    """Contents of `models/<name>/model.yaml`."""

    task: Task = Field(
        description="embeddings | text-classification | rerank | image-classification | "
        "image-embeddings | tensor"
    )
    description: str = Field("", description="Free text shown in /v1/models and metadata.")
    version_policy: Literal["latest", "pinned"] = Field(
        "latest", description="Serve the highest ready version, or `pinned_version`."
    )
    pinned_version: int | None = Field(None, ge=1, description="Version served when pinned.")
    max_sequence_length: int = Field(
        256, ge=2, le=65536, description="Token limit per input (capped by the model's own)."
    )
    truncation: Literal["truncate", "reject"] = Field(
        "truncate", description="Too-long inputs: cut to the limit, or answer 422."
    )
    pooling: Literal["mean", "cls"] = Field(
        "mean", description="Embeddings pooling (image embeddings: over patches or pixels)."
    )
    normalize: bool = Field(True, description="Embeddings: L2-normalise.")
    matryoshka_dimensions: list[PositiveInt] | None = Field(
        None,
        description="Embeddings: smaller sizes the model was trained to be cut to (Matryoshka); "
        "OpenAI's `dimensions` may ask for one of them (the vector is cut, then L2-normalised "
        "again when `normalize` is on). Unset: only the full size.",
    )
    labels: list[str] | None = Field(
        None, description="Classification labels by class index (else config.json id2label)."
    )
    top_k: int | None = Field(None, ge=1, description="Classification default top_k (all).")
    score: Literal["sigmoid", "raw"] = Field(
        "sigmoid",
        description="Rerank: relevance_score is the sigmoid of the cross-encoder's logit (as "
        "sentence-transformers' CrossEncoder gives it), or the raw logit.",
    )
    image: ImageConfig | None = Field(
        None,
        validate_default=True,
        description="Image tasks: preprocessing (required for them, see below).",
    )
    output_name: str | None = Field(
        None,
        description="ONNX output to use. Default: embeddings -> last_hidden_state / "
        "sentence_embedding / first output; classification and rerank -> logits / first "
        "output; image embeddings -> image_embeds / pooler_output / last_hidden_state / first.",
    )
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    cache_ttl_seconds: int = Field(3600, ge=0, description="Cache-Control max-age.")
    cache_scope: Literal["shared", "subject"] = Field(
        "subject",
        description="Who may be answered from the edge's cache: `subject` (each caller only "
        "from its own earlier requests; no hit or Age reveals another's) or `shared` (anyone "
        "sending the same input: more hits, but a hit tells that someone sent it, and when).",
    )
    inputs: list[TensorSpec] | None = Field(None, description="Tensor: declared inputs.")
    outputs: list[TensorSpec] | None = Field(None, description="Tensor: declared outputs.")
    onnx: OnnxConfig = Field(default_factory=OnnxConfig)

    @model_validator(mode="after")
    def _check_policy(self) -> ModelConfig:
        if self.version_policy == "pinned" and self.pinned_version is None:
            raise ValueError("version_policy 'pinned' needs pinned_version")
        return self

    @field_validator("image")
    @classmethod
    def _image_for_image_tasks(cls, image: ImageConfig | None, info: ValidationInfo) -> Any:
        task = info.data.get("task")
        if task in IMAGE_TASKS and image is None:
            raise ValueError(f"task {task!r} needs an `image:` preprocessing section")
        return image


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFolderError(path, None, "file not found") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ModelFolderError(path, None, f"not valid YAML: {exc}".splitlines()[0]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ModelFolderError(path, None, "must be a mapping of fields")
    return data


def parse_model_config(data: dict[str, Any], file: str | Path) -> ModelConfig:
    """Validate a mapping as a ModelConfig; the first problem is raised as ModelFolderError."""
    try:
        return ModelConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        field = ".".join(str(p) for p in err["loc"]) or None
        raise ModelFolderError(file, field, err["msg"]) from None


def load_model_config(path: str | Path, *, overrides: str | Path | None = None) -> ModelConfig:
    """Load and validate a `model.yaml` (or the folder holding it).

    `overrides` names an optional version-level `model.yaml` merged over the model-level one.
    Raises ModelFolderError naming the file and field.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CONFIG_FILE
    data = _read_yaml(path)
    file: Path = path
    if overrides is not None and Path(overrides).is_file():
        file = Path(overrides)
        extra = _read_yaml(file)
        data = _deep_merge(data, extra)
    return parse_model_config(data, file)


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out
