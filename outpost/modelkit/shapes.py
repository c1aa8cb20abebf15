"""The demo image model: a small CNN that tells seven drawn shapes apart, trained offline on
pictures generated here (no data set is downloaded).

Classes: circle, square, triangle and an arrow pointing up, down, left or right. The arrows make
orientation matter: a phone photo of an up arrow stored sideways with an EXIF rotation is only
an up arrow once the rotation is applied. Pictures vary in size, aspect ratio, colours, position,
scale, a small tilt, clutter lines and noise, and are saved as JPEG half of the time; each goes
through the origin's own preprocessing (`origin.engine.images.Preprocessor`, configured as
models/shapes/model.yaml says) before training, so the model learns on exactly what it is served.

The graph has two outputs: `logits` (served by `shapes`, image-classification) and `embedding`
(the 48 pooled features before the classifier, served by `shapes-embed`, image-embeddings).
"""

from __future__ import annotations

import io
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

SHAPE_LABELS = (
    "circle",
    "square",
    "triangle",
    "arrow_up",
    "arrow_down",
    "arrow_left",
    "arrow_right",
)
INPUT_SIZE = 48
EMBEDDING_DIMS = 48
PREPROCESSING: dict[str, Any] = {
    "resize": {"shortest_edge": INPUT_SIZE},
    "crop": {"height": INPUT_SIZE, "width": INPUT_SIZE},
    "resample": "bilinear",
    "rescale": 1 / 255,
    "mean": [0.5, 0.5, 0.5],
    "std": [0.5, 0.5, 0.5],
}
_ARROW_UP = [(0.0, -1.0), (0.8, 0.0), (0.3, 0.0), (0.3, 1.0), (-0.3, 1.0), (-0.3, 0.0), (-0.8, 0.0)]
_TURN = {"arrow_up": 0, "arrow_right": 90, "arrow_left": -90, "arrow_down": 180}


def _points(label: str, cx: float, cy: float, r: float, tilt: float) -> list[tuple[float, float]]:
    if label == "square":
        base = [(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)]
    elif label == "triangle":
        base = [(0.0, -1.0), (0.9, 0.75), (-0.9, 0.75)]
    else:
        base = _ARROW_UP
    angle = math.radians(tilt + _TURN.get(label, 0))
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + r * (x * c - y * s), cy + r * (x * s + y * c)) for x, y in base]


def render(rng: np.random.Generator, label: str) -> Any:
    """One picture of `label`, as a photo of a drawing might look (a PIL image)."""
    from PIL import Image, ImageDraw, ImageFilter

    w, h = (int(x) for x in rng.integers(72, 200, size=2))
    light = rng.random() < 0.7
    bg = rng.integers(170, 256, size=3) if light else rng.integers(0, 90, size=3)
    fg = rng.integers(0, 110, size=3) if light else rng.integers(150, 256, size=3)
    img = Image.new("RGB", (w, h), tuple(int(x) for x in bg))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(0, 4))):  # clutter
        pts = [tuple(int(v) for v in rng.integers(0, max(w, h), size=2)) for _ in range(2)]
        draw.line(pts, fill=tuple(int(x) for x in rng.integers(0, 256, size=3)), width=1)
    short = min(w, h)
    r = short * rng.uniform(0.22, 0.4)
    cx = w / 2 + rng.uniform(-0.12, 0.12) * short
    cy = h / 2 + rng.uniform(-0.12, 0.12) * short
    color = tuple(int(x) for x in fg)
    if label == "circle":
        rx, ry = r * rng.uniform(0.85, 1.0), r * rng.uniform(0.85, 1.0)
        draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=color)
    else:
        draw.polygon(_points(label, cx, cy, r, rng.uniform(-15, 15)), fill=color)
    if rng.random() < 0.5:
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.5))))
    pixels = np.asarray(img, dtype=np.float32) + rng.normal(0, rng.uniform(2, 12), (h, w, 3))
    img = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    if rng.random() < 0.5:
        out = io.BytesIO()
        img.save(out, format="JPEG", quality=int(rng.integers(40, 95)))
        img = Image.open(io.BytesIO(out.getvalue())).convert("RGB")
    return img


def dataset(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` preprocessed pictures (NCHW float32) and their label indices."""
    from origin.engine.images import Preprocessor
    from origin.repository.config import ImageConfig

    prep = Preprocessor(ImageConfig.model_validate(PREPROCESSING), np.dtype(np.float32))
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(SHAPE_LABELS), size=n)
    x = np.stack([prep(render(rng, SHAPE_LABELS[int(i)])) for i in labels])
    return x, labels.astype(np.int64)


def _network() -> Any:
    import torch
    from torch import nn

    class ShapesNet(nn.Module):
        """3 conv blocks -> global average (the embedding) -> linear classifier."""

        def __init__(self) -> None:
            super().__init__()
            layers: list[nn.Module] = []
            for cin, cout in ((3, 12), (12, 24), (24, EMBEDDING_DIMS)):
                layers += [
                    nn.Conv2d(cin, cout, 3, padding=1),
                    nn.BatchNorm2d(cout),
                    nn.ReLU(),
                    nn.MaxPool2d(2),
                ]
            self.features = nn.Sequential(*layers)
            self.head = nn.Linear(EMBEDDING_DIMS, len(SHAPE_LABELS))

        def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            embedding = self.features(pixel_values).mean(dim=(2, 3))
            return self.head(embedding), embedding

    return ShapesNet()


def train_shapes(out: Path, *, train_n: int = 4000, test_n: int = 1400, epochs: int = 6) -> dict:
    """Train, export `out/model.onnx` (outputs logits and embedding) and report accuracy measured
    on held-out generated pictures with the exported graph."""
    import onnxruntime as ort
    import torch

    from outpost.modelkit.torch_onnx import export_image_module

    started = time.perf_counter()
    torch.manual_seed(0)
    x_train, y_train = dataset(train_n, seed=1)
    x_test, y_test = dataset(test_n, seed=2)
    net = _network()
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    gen = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        net.train()
        for idx in torch.randperm(len(xt), generator=gen).split(128):
            opt.zero_grad()
            logits, _ = net(xt[idx])
            torch.nn.functional.cross_entropy(logits, yt[idx]).backward()
            opt.step()
        sched.step()
    train_seconds = time.perf_counter() - started
    net.eval()
    export_image_module(
        net,
        out / "model.onnx",
        output_names=["logits", "embedding"],
        height=INPUT_SIZE,
        width=INPUT_SIZE,
    )
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    logits = np.concatenate(
        [
            session.run(["logits"], {"pixel_values": x_test[i : i + 256]})[0]
            for i in range(0, test_n, 256)
        ]
    )
    predicted = logits.argmax(axis=1)
    per_class = {
        label: round(float((predicted[y_test == i] == i).mean()), 4)
        for i, label in enumerate(SHAPE_LABELS)
    }
    return {
        "source": "pictures generated by outpost/modelkit/shapes.py (no data set downloaded)",
        "labels": list(SHAPE_LABELS),
        "train_pictures": train_n,
        "test_pictures": test_n,
        "epochs": epochs,
        "train_seconds": round(train_seconds, 1),
        "test_accuracy": round(float((predicted == y_test).mean()), 4),
        "test_accuracy_by_class": per_class,
    }
