"""Export a Hugging Face image checkpoint (ViT, ConvNeXt, MobileNet and alike) to ONNX, with the
`image:` preprocessing of model.yaml translated from its image processor, and verify both
together against PyTorch and the Hugging Face image processor.

The check is end to end: a set of generated pictures of several sizes and aspect ratios goes
through Hugging Face's processor and the PyTorch model on one side, and through the origin's own
preprocessing (`origin.engine.images.Preprocessor`, configured by the translated section) and the
exported graph on the other. A version is only written when the two agree.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from outpost.modelkit.errors import CheckpointError, VerificationError

IMAGE_TASKS = ("image-classification", "image-embeddings")
PROCESSOR_FILE = "preprocessor_config.json"


def _processor(src: Path) -> Any:
    from transformers import AutoImageProcessor

    if not (src / PROCESSOR_FILE).is_file():
        raise CheckpointError(f"{src / PROCESSOR_FILE}: missing (an image checkpoint needs it)")
    try:
        return AutoImageProcessor.from_pretrained(str(src), local_files_only=True)
    except Exception as exc:  # transformers raises many types for a broken processor config
        raise CheckpointError(f"{src / PROCESSOR_FILE}: cannot be loaded ({exc})") from None


def image_preprocessing(src: Path) -> dict[str, Any]:
    """model.yaml's `image:` section doing what the checkpoint's image processor does."""
    from PIL import Image

    p = _processor(src)
    size = dict(getattr(p, "size", None) or {})
    section: dict[str, Any] = {}
    if getattr(p, "do_resize", True) and size:
        if "shortest_edge" in size:
            edge = int(size["shortest_edge"])
            crop_pct = getattr(p, "crop_pct", None)
            if crop_pct is not None:  # ConvNeXt: resize to edge / crop_pct, then crop to edge
                if edge < 384:
                    section["resize"] = {"shortest_edge": int(edge / crop_pct)}
                    section["crop"] = {"height": edge, "width": edge}
                else:
                    section["resize"] = {"height": edge, "width": edge}
            else:
                section["resize"] = {"shortest_edge": edge}
        elif "height" in size and "width" in size:
            section["resize"] = {"height": int(size["height"]), "width": int(size["width"])}
        else:
            raise CheckpointError(f"{src / PROCESSOR_FILE}: size {size} is not supported")
    crop = getattr(p, "crop_size", None)
    if getattr(p, "do_center_crop", False) and crop and "crop" not in section:
        section["crop"] = {"height": int(crop["height"]), "width": int(crop["width"])}
    resample = getattr(p, "resample", Image.Resampling.BILINEAR)
    section["resample"] = Image.Resampling(int(resample)).name.lower()
    section["rescale"] = float(p.rescale_factor) if getattr(p, "do_rescale", True) else 1.0
    if getattr(p, "do_normalize", True):
        section["mean"] = [float(x) for x in p.image_mean]
        section["std"] = [float(x) for x in p.image_std]
    section["channel_order"] = "rgb"
    section["layout"] = "nchw"
    return section


def verification_pictures() -> list[Any]:
    """Eight generated pictures: gradients, shapes and noise, landscape, portrait and square."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(27)
    out = []
    for i, (w, h) in enumerate(
        [(64, 48), (48, 64), (40, 40), (300, 200), (97, 131), (33, 70), (256, 256), (80, 35)]
    ):
        x = np.linspace(0, 255, w)[None, :, None]
        y = np.linspace(0, 255, h)[:, None, None]
        base = np.concatenate([x + 0 * y, y + 0 * x, (x + y) / 2], axis=2)
        noise = rng.normal(0, 20 + 5 * i, size=(h, w, 3))
        img = Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")
        draw = ImageDraw.Draw(img)
        draw.ellipse((w // 4, h // 4, w // 2 + i, h // 2 + i), fill=(200, 30 * i % 255, 40))
        out.append(img)
    return out


def export_image_checkpoint(src: Path, dest: Path, *, task: str) -> dict[str, Any]:
    """Export and verify; writes dest/model.onnx and config.json, returns the report fields."""
    import onnxruntime as ort
    import torch
    from transformers import AutoModel, AutoModelForImageClassification

    from origin.engine.images import Preprocessor
    from origin.repository.config import ImageConfig
    from outpost.modelkit.torch_onnx import OutputSelector, export_image_module

    section = image_preprocessing(src)
    processor = _processor(src)
    cls = AutoModelForImageClassification if task == "image-classification" else AutoModel
    try:
        model = cls.from_pretrained(str(src), local_files_only=True).eval()
    except Exception as exc:  # bad weights/config surface as many exception types
        raise CheckpointError(f"{src}: weights could not be loaded as {task} ({exc})") from None
    prep = Preprocessor(ImageConfig.model_validate(section), np.dtype(np.float32))
    pictures = verification_pictures()
    ours = np.stack([prep(p) for p in pictures])
    height, width = ours.shape[2], ours.shape[3]
    with torch.no_grad():
        theirs = processor(images=pictures, return_tensors="pt")["pixel_values"]
        ref = model(pixel_values=theirs, return_dict=True)
    if task == "image-classification":
        output, pooling = "logits", None
    elif getattr(ref, "pooler_output", None) is not None and ref.last_hidden_state.ndim == 4:
        output, pooling = "pooler_output", None  # convolutional: pooled feature map
    else:
        output, pooling = "last_hidden_state", "cls"  # transformer: the CLS token
    ref_out = ref[output].float().numpy()
    if output == "pooler_output" and ref_out.ndim == 4:  # e.g. [n, c, 1, 1]
        raise CheckpointError(f"{src}: pooler_output has shape {list(ref_out.shape)}")
    started = time.perf_counter()
    export_image_module(
        OutputSelector.wrap(model, output, ("pixel_values",)),
        dest / "model.onnx",
        output_names=[output],
        height=height,
        width=width,
    )
    seconds = time.perf_counter() - started
    (dest / "config.json").write_text((src / "config.json").read_text())
    (dest / PROCESSOR_FILE).write_text((src / PROCESSOR_FILE).read_text())
    session = ort.InferenceSession(str(dest / "model.onnx"), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"pixel_values": ours})
    report: dict[str, Any] = {
        "export_seconds": round(seconds, 3),
        "verify_images": len(pictures),
        "image": section,
        "pooling": pooling,
        "pixels_max_abs_diff_vs_hf_processor": float(np.abs(ours - theirs.numpy()).max()),
    }
    if task == "image-classification":
        report["max_abs_logit_diff"] = float(np.abs(ref_out - got).max())
        if not report["max_abs_logit_diff"] <= 1e-3:
            raise VerificationError(
                f"{dest / 'model.onnx'}: ONNX + origin preprocessing logits differ from "
                f"PyTorch + the image processor by {report['max_abs_logit_diff']:.2e} "
                "(tolerance 1e-3)"
            )
    else:
        a, b = _pool(ref_out, pooling), _pool(got, pooling)
        cos = (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        report["min_cosine"], report["mean_cosine"] = float(cos.min()), float(cos.mean())
        if not report["min_cosine"] >= 0.9999:
            raise VerificationError(
                f"{dest / 'model.onnx'}: ONNX + origin preprocessing embeddings vs PyTorch + "
                f"the image processor: cosine {report['min_cosine']:.6f} (tolerance >= 0.9999)"
            )
    return report


def _pool(out: np.ndarray, pooling: str | None) -> np.ndarray:
    out = np.asarray(out, dtype=np.float64)
    return out[:, 0, :] if pooling == "cls" else out


def image_model_config(src: Path, task: str) -> dict[str, Any]:
    """model.yaml for a freshly imported image checkpoint."""
    config: dict[str, Any] = {"task": task, "image": image_preprocessing(src)}
    if task == "image-embeddings":  # CLS for a transformer's tokens; pooled outputs stay as is
        config.update(pooling="cls", normalize=True)
    config["batching"] = {"max_batch_size": 16, "max_queue_delay_ms": 2, "max_queue_size": 128}
    return config
