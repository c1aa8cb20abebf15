"""Loading one model version from disk (blocking; run it in a thread) and offline validation.

Loading = config (model-level `model.yaml` merged with an optional version-level one) ->
onnxruntime session -> task pipeline (tokenizer, input/output checks) -> warm-up (which also
checks that the tokenizer's ids fit the model's embedding table). Every failure is a
`ModelFolderError` naming the file and field, so `outpost models validate` and `/v1/models`
can say exactly what to fix.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from origin.engine.onnx_session import create_session
from origin.engine.pipelines import PIPELINES, Pipeline
from origin.repository.config import CONFIG_FILE, ModelConfig, ModelFolderError, load_model_config

ONNX_FILE = "model.onnx"

Fingerprint = tuple[tuple[str, int, int], ...]


@dataclass
class LoadedVersion:
    """A ready-to-serve model version (its batcher is attached by the registry)."""

    name: str
    version: int
    path: Path
    config: ModelConfig
    pipeline: Pipeline
    fingerprint: Fingerprint

    @property
    def created(self) -> int:
        """When the version's files last changed (Unix seconds): the newest mtime in its folder.
        Shown as `created` in /v1/models; the same on every replica serving the same files."""
        inside = [m for f, _, m in self.fingerprint if Path(f).parent == self.path]
        return max(inside, default=0) // 1_000_000_000


def version_dirs(model_dir: Path) -> dict[int, Path]:
    """Integer-named subfolders that contain a model.onnx (others are not versions yet)."""
    out: dict[int, Path] = {}
    try:
        entries = list(os.scandir(model_dir))
    except OSError:
        return out
    for entry in entries:
        if entry.is_dir() and entry.name.isdigit() and int(entry.name) > 0:
            path = Path(entry.path)
            if (path / ONNX_FILE).exists():
                out[int(entry.name)] = path
    return out


def fingerprint(model_dir: Path, version_dir: Path) -> Fingerprint:
    """Sizes and mtimes of the files a version depends on; a change means reload."""
    files = [model_dir / CONFIG_FILE]
    with contextlib.suppress(OSError):
        files += sorted(p for p in version_dir.iterdir() if p.is_file())
    out = []
    for f in files:
        try:
            st = f.stat()
        except OSError:
            continue
        out.append((str(f), st.st_size, st.st_mtime_ns))
    return tuple(out)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:400]


def load_version(name: str, model_dir: Path, version: int) -> LoadedVersion:
    """Load, check and warm up `model_dir/<version>`. Raises ModelFolderError."""
    vdir = model_dir / str(version)
    fp = fingerprint(model_dir, vdir)
    config = load_model_config(model_dir / CONFIG_FILE, overrides=vdir / CONFIG_FILE)
    onnx_path = vdir / ONNX_FILE
    if not onnx_path.is_file():
        raise ModelFolderError(onnx_path, None, "file not found")
    try:
        session = create_session(onnx_path, config.onnx)
    except Exception as exc:
        raise ModelFolderError(
            onnx_path, None, f"onnxruntime cannot load it: {_first_line(exc)}"
        ) from None
    try:
        pipeline = PIPELINES[config.task](config, session, vdir)  # type: ignore[arg-type]
        pipeline.warm_up()
    except ModelFolderError:
        raise
    except Exception as exc:
        raise ModelFolderError(
            onnx_path, None, f"warm-up inference failed: {_first_line(exc)}"
        ) from None
    return LoadedVersion(name, version, vdir, config, pipeline, fp)


def validate_model_folder(path: str | Path) -> list[ModelFolderError]:
    """Everything that would make loading `models/<name>` (or one version folder) fail.

    Runs without a server: parses the config, opens each version's ONNX file, loads its
    tokenizer, checks the inputs the task needs and tokenizer/model vocabulary agreement, and
    runs a warm-up inference. Returns an empty list when the folder would load.
    """
    path = Path(path)
    if path.name.isdigit() and (path.parent / CONFIG_FILE).exists():
        model_dir, versions = path.parent, {int(path.name): path}
    else:
        model_dir, versions = path, version_dirs(path)
    if not model_dir.is_dir():
        return [ModelFolderError(model_dir, None, "not a folder")]
    try:
        load_model_config(model_dir / CONFIG_FILE)
    except ModelFolderError as exc:
        return [exc]
    if not versions:
        return [
            ModelFolderError(model_dir, None, f"no version folder (e.g. 1/) containing {ONNX_FILE}")
        ]
    errors: list[ModelFolderError] = []
    for version in sorted(versions):
        try:
            load_version(model_dir.name, model_dir, version)
        except ModelFolderError as exc:
            errors.append(exc)
    return errors
