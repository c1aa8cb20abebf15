"""Export a local Hugging Face checkpoint to ONNX, verify it against PyTorch, quantize to int8.

Everything heavy (torch, transformers models) is imported inside functions: the runtime never
needs it. Verification is always on: an export is only trusted once ONNX and PyTorch agree on a
fixed set of sentences within the stated tolerance.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from outpost.modelkit.errors import CheckpointError, VerificationError
from outpost.modelkit.torch_onnx import TOKENIZER_FILES, OutputSelector, export_text_module

Task = Literal[
    "embeddings", "text-classification", "rerank", "image-classification", "image-embeddings"
]
TASKS: tuple[str, ...] = (
    "embeddings",
    "text-classification",
    "rerank",
    "image-classification",
    "image-embeddings",
)
IMAGE_TASKS = ("image-classification", "image-embeddings")
LOGIT_TASKS = ("text-classification", "rerank")  # verified on logits
Progress = Callable[[str], None]
"""Called with a short description each time a step starts (the CLI shows it in a bar)."""

FP32_MIN_COSINE = 0.9999
FP32_MAX_ABS_LOGIT_DIFF = 1e-3
INT8_MIN_MEAN_COSINE = 0.98
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")

# (query, document) pairs a cross-encoder is verified on: short, long, related and not.
VERIFY_PAIRS = [
    ("how do I reset my password", "Tap Settings, then Account, then Reset password."),
    ("how do I reset my password", "Our offices are closed on public holidays."),
    ("refund for a double charge", "I was charged twice for my subscription this month."),
    ("dark mode", "Could you add a dark mode to the settings screen?"),
    ("app crashes camera", "The app crashes every time I open the camera. " * 20),
    ("a", "ok"),
]

VERIFY_SENTENCES = [
    "The app crashes every time I open the camera.",
    "I was charged twice for my subscription this month.",
    "Could you add a dark mode to the settings screen?",
    "Love the new update, syncing is so much faster now!",
    "How do I change the email address on my account?",
    "ok",
    "A man is playing a guitar on the street corner while people walk by.",
    "Quarterly revenue grew by 12% despite supply chain disruptions in Asia.",
    "Est-ce que l'application fonctionne hors ligne ?",
    "Login fails with error 403 after resetting my password yesterday evening, please help",
    "The quick brown fox jumps over the lazy dog.",
    "Photos uploaded from Android appear rotated by 90 degrees on the web version.",
]


@dataclass
class ExportReport:
    """What an export produced and how closely ONNX matched PyTorch."""

    task: str
    onnx_path: str
    export_seconds: float
    verify_sentences: int
    min_cosine: float | None = None  # embeddings: pooled ONNX vs PyTorch
    mean_cosine: float | None = None
    max_abs_logit_diff: float | None = None  # classification and rerank
    files: list[str] = field(default_factory=list)
    verify_pairs: int | None = None  # rerank
    verify_images: int | None = None  # image tasks: pictures through both preprocessings
    pixels_max_abs_diff: float | None = None  # origin vs Hugging Face preprocessing

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Int8Report:
    """How far the int8 model drifts from fp32 on the verification sentences."""

    onnx_path: str
    quantize_seconds: float
    fp32_bytes: int
    int8_bytes: int
    mean_cosine: float
    min_cosine: float
    argmax_agreement: float | None = None  # text-classification only

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _step(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress(message)


def check_checkpoint(src: Path, task: str = "embeddings") -> None:
    """Raise CheckpointError naming the first missing or unreadable file of a checkpoint."""
    import json

    if not src.is_dir():
        raise CheckpointError(f"{src}: not a folder (expected a Hugging Face checkpoint folder)")
    config = src / "config.json"
    if not config.is_file():
        raise CheckpointError(f"{config}: missing (not a Hugging Face checkpoint folder)")
    try:
        data = json.loads(config.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{config}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or "model_type" not in data:
        raise CheckpointError(f"{config}: field 'model_type' is missing")
    if not any((src / name).is_file() for name in WEIGHT_FILES):
        raise CheckpointError(f"{src}: no weights file (expected one of {', '.join(WEIGHT_FILES)})")
    if task in IMAGE_TASKS:
        if not (src / "preprocessor_config.json").is_file():
            raise CheckpointError(
                f"{src / 'preprocessor_config.json'}: missing (an image checkpoint needs its "
                "image processor's settings)"
            )
    elif not any((src / name).is_file() for name in ("tokenizer.json", "vocab.txt")):
        raise CheckpointError(f"{src}: no tokenizer (expected tokenizer.json or vocab.txt)")


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """sentence-transformers mean pooling: average of token vectors where attention_mask is 1."""
    m = mask[..., None].astype(np.float32)
    return (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity."""
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    num = (a * b).sum(axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return num / np.clip(den, 1e-12, None)


def load_tokenizer(folder: Path) -> Any:
    """A fast Hugging Face tokenizer from a local folder, never touching the hub."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True, use_fast=True)
    except Exception as exc:  # transformers raises many types for a broken tokenizer
        raise CheckpointError(f"{folder}: tokenizer files could not be loaded ({exc})") from None


def encode(tokenizer: Any, sentences: list[str], max_length: int = 128) -> dict[str, np.ndarray]:
    """Tokenize to int64 numpy arrays (padded, truncated), named as the model expects."""
    enc = tokenizer(
        sentences, padding=True, truncation=True, max_length=max_length, return_tensors="np"
    )
    return {k: np.asarray(v, dtype=np.int64) for k, v in enc.items()}


def _load_model(src: Path, task: str) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel, AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    cls = AutoModelForSequenceClassification if task in LOGIT_TASKS else AutoModel
    try:
        return cls.from_pretrained(
            str(src), local_files_only=True, attn_implementation="eager"
        ).eval()
    except Exception as exc:  # bad weights/config surface as many exception types
        raise CheckpointError(f"{src}: weights could not be loaded as {task} ({exc})") from None


def _save_tokenizer_files(src: Path, tokenizer: Any, dest: Path) -> list[str]:
    import shutil

    copied = []
    for name in [*TOKENIZER_FILES, "config.json"]:
        if (src / name).is_file():
            shutil.copy2(src / name, dest / name)
            copied.append(name)
    if "tokenizer.json" not in copied:  # only vocab.txt: write the fast tokenizer's JSON
        tokenizer.backend_tokenizer.save(str(dest / "tokenizer.json"))
        copied.append("tokenizer.json")
    return copied


def _session(onnx_path: Path) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    return ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])


def run_onnx(session: Any, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """Run a text model with only the inputs it declares; return its first output."""
    names = [i.name for i in session.get_inputs()]
    return session.run(None, {n: feeds[n] for n in names})[0]


def export_hf_checkpoint(
    src: Path,
    dest_version_dir: Path,
    *,
    task: Task | str,
    opset: int = 17,
    progress: Progress | None = None,
) -> ExportReport:
    """Export the checkpoint in `src` into `dest_version_dir` (created; should be a temp dir).

    Writes model.onnx (dynamic batch/sequence axes; output `last_hidden_state` for embeddings,
    `logits` for text-classification and rerank), the tokenizer files and config.json, then
    verifies ONNX against PyTorch: embeddings need mean-pooled cosine >= 0.9999 on every
    sentence, classification and rerank |delta logit| <= 1e-3 (rerank on query-document
    pairs). Image tasks go through `vision_export` (ONNX + the origin's preprocessing against
    PyTorch + the checkpoint's image processor). Raises CheckpointError / VerificationError.
    """
    import torch

    if task not in TASKS:
        raise CheckpointError(f"task: {task!r} is not one of {', '.join(TASKS)}")
    check_checkpoint(src, task)
    dest_version_dir.mkdir(parents=True, exist_ok=True)
    if task in IMAGE_TASKS:
        return _export_image(src, dest_version_dir, task, progress)
    _step(progress, "loading checkpoint")
    tokenizer = load_tokenizer(src)
    model = _load_model(src, task)
    output = "logits" if task in LOGIT_TASKS else "last_hidden_state"
    if task == "rerank":
        feeds = encode_pairs(tokenizer, VERIFY_PAIRS)
    else:
        feeds = encode(tokenizer, VERIFY_SENTENCES)
    input_names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in feeds]
    onnx_path = dest_version_dir / "model.onnx"

    _step(progress, "exporting to ONNX")
    started = time.perf_counter()
    export_text_module(
        OutputSelector.wrap(model, output, input_names),
        onnx_path,
        output_name=output,
        opset=opset,
        output_has_sequence_axis=output == "last_hidden_state",
        input_names=input_names,
        sample={n: torch.from_numpy(feeds[n][:2, :8].copy()) for n in input_names},
    )
    export_seconds = time.perf_counter() - started
    files = ["model.onnx", *_save_tokenizer_files(src, tokenizer, dest_version_dir)]

    _step(progress, "verifying ONNX against PyTorch")
    with torch.no_grad():
        ref = model(**{n: torch.from_numpy(feeds[n]) for n in input_names}, return_dict=True)
        ref_out = ref[output].float().numpy()
    got = run_onnx(_session(onnx_path), feeds)
    report = ExportReport(
        task=task,
        onnx_path=str(onnx_path),
        export_seconds=round(export_seconds, 3),
        verify_sentences=0 if task == "rerank" else len(VERIFY_SENTENCES),
        verify_pairs=len(VERIFY_PAIRS) if task == "rerank" else None,
        files=files,
    )
    if output == "logits":
        report.max_abs_logit_diff = float(np.abs(ref_out - got).max())
        if not report.max_abs_logit_diff <= FP32_MAX_ABS_LOGIT_DIFF:
            raise VerificationError(
                f"{onnx_path}: ONNX logits differ from PyTorch by {report.max_abs_logit_diff:.2e}"
                f" (tolerance {FP32_MAX_ABS_LOGIT_DIFF})"
            )
    else:
        mask = feeds["attention_mask"]
        cos = cosine_rows(mean_pool(ref_out, mask), mean_pool(got, mask))
        report.min_cosine = float(cos.min())
        report.mean_cosine = float(cos.mean())
        if not report.min_cosine >= FP32_MIN_COSINE:
            raise VerificationError(
                f"{onnx_path}: ONNX vs PyTorch cosine {report.min_cosine:.6f}"
                f" (tolerance >= {FP32_MIN_COSINE})"
            )
    return report


def encode_pairs(
    tokenizer: Any, pairs: list[tuple[str, str]], max_length: int = 128
) -> dict[str, np.ndarray]:
    """Tokenize (query, document) pairs as a cross-encoder reads them (longest-first cut)."""
    enc = tokenizer(
        [q for q, _ in pairs],
        [d for _, d in pairs],
        padding=True,
        truncation=True,
        max_length=max_length,
        return_tensors="np",
    )
    return {k: np.asarray(v, dtype=np.int64) for k, v in enc.items()}


def _export_image(src: Path, dest: Path, task: str, progress: Progress | None) -> ExportReport:
    from outpost.modelkit.vision_export import export_image_checkpoint

    _step(progress, "exporting to ONNX and verifying against PyTorch")
    r = export_image_checkpoint(src, dest, task=task)
    return ExportReport(
        task=task,
        onnx_path=str(dest / "model.onnx"),
        export_seconds=r["export_seconds"],
        verify_sentences=0,
        min_cosine=r.get("min_cosine"),
        mean_cosine=r.get("mean_cosine"),
        max_abs_logit_diff=r.get("max_abs_logit_diff"),
        files=["model.onnx", "config.json", "preprocessor_config.json"],
        verify_images=r["verify_images"],
        pixels_max_abs_diff=r["pixels_max_abs_diff_vs_hf_processor"],
    )


def quantize_int8(src_onnx: Path, dst_onnx: Path) -> None:
    """Dynamic int8 quantization: QInt8 weights, per-channel (per-tensor loses ~0.1 cosine)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    dst_onnx.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    hush = _DropPreprocessHint()
    root.addFilter(hush)  # onnxruntime logs a generic "consider pre-processing" hint via root
    try:
        quantize_dynamic(
            str(src_onnx), str(dst_onnx), per_channel=True, weight_type=QuantType.QInt8
        )
    finally:
        root.removeFilter(hush)


class _DropPreprocessHint(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def verify_int8(
    fp32_onnx: Path,
    int8_onnx: Path,
    tokenizer_dir: Path,
    *,
    task: Task | str,
    min_mean_cosine: float = INT8_MIN_MEAN_COSINE,
    quantize_seconds: float = 0.0,
) -> Int8Report:
    """Compare int8 to fp32 on the verification sentences; raise if mean cosine is too low.

    Embeddings compare mean-pooled vectors; classification compares logit vectors (and reports
    how often the predicted label agrees).
    """
    feeds = encode(load_tokenizer(tokenizer_dir), VERIFY_SENTENCES)
    ref = run_onnx(_session(fp32_onnx), feeds)
    got = run_onnx(_session(int8_onnx), feeds)
    agreement = None
    if ref.ndim == 3:
        mask = feeds["attention_mask"]
        ref, got = mean_pool(ref, mask), mean_pool(got, mask)
    elif task == "text-classification":
        agreement = float((ref.argmax(axis=1) == got.argmax(axis=1)).mean())
    cos = cosine_rows(ref, got)
    report = Int8Report(
        onnx_path=str(int8_onnx),
        quantize_seconds=round(quantize_seconds, 3),
        fp32_bytes=fp32_onnx.stat().st_size,
        int8_bytes=int8_onnx.stat().st_size,
        mean_cosine=float(cos.mean()),
        min_cosine=float(cos.min()),
        argmax_agreement=agreement,
    )
    if not report.mean_cosine >= min_mean_cosine:
        raise VerificationError(
            f"{int8_onnx}: int8 vs fp32 mean cosine {report.mean_cosine:.4f}"
            f" (tolerance >= {min_mean_cosine})"
        )
    return report
