"""`outpost models import`: turn a local Hugging Face checkpoint into a new served version.

Everything is built in a hidden temp folder inside `models/<name>/` and renamed into place, so
the origin's watcher never sees half a version. model.yaml is written (if absent) only after the
version is in place, because the origin only considers folders that have one.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from outpost.modelkit.errors import CheckpointError, ModelExistsError, ModelKitError
from outpost.modelkit.export import (
    IMAGE_TASKS,
    TASKS,
    ExportReport,
    Int8Report,
    Progress,
    Task,
    check_checkpoint,
    export_hf_checkpoint,
    quantize_int8,
    verify_int8,
)
from outpost.modelkit.layout import next_version, staged_dir, write_model_yaml_if_absent

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@dataclass
class ImportReport:
    """Where the new version went and how it was verified."""

    name: str
    version: int
    version_dir: str
    task: str
    int8: bool
    model_yaml_written: bool
    seconds: float
    export: ExportReport
    int8_report: Int8Report | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_model_config(src: Path, task: str) -> dict[str, Any]:
    """A model.yaml for a freshly imported checkpoint (sequence length from its own config;
    image preprocessing from its image processor)."""
    if task in IMAGE_TASKS:
        from outpost.modelkit.vision_export import image_model_config

        return image_model_config(src, task)
    max_len = 256
    st_config = src / "sentence_bert_config.json"
    if st_config.is_file():
        max_len = int(json.loads(st_config.read_text()).get("max_seq_length", max_len))
    else:
        hf = json.loads((src / "config.json").read_text())
        max_len = min(int(hf.get("max_position_embeddings", 512)), 512)
    config: dict[str, Any] = {
        "task": task,
        "max_sequence_length": max_len,
        "truncation": "truncate",
    }
    if task == "embeddings":
        config.update(pooling="mean", normalize=True)
    config["batching"] = {
        "max_batch_size": 32,
        "max_queue_delay_ms": 2,
        "max_batch_tokens": 1024,
        "max_queue_size": 256,
    }
    return config


def _existing_task(model_dir: Path) -> str | None:
    import yaml

    path = model_dir / "model.yaml"
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ModelKitError(f"{path}: not valid YAML ({exc})") from None
    task = data.get("task") if isinstance(data, dict) else None
    return str(task) if task is not None else None


def import_checkpoint(
    src: Path,
    models_dir: Path,
    name: str,
    *,
    task: Task | str,
    int8: bool = False,
    version: int | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Export, verify (and with `int8`, quantize) `src` into `models_dir/name/<version>`.

    `version` defaults to the next free number. With `int8` the version's model.onnx is the
    dynamically quantized graph (verified against the fp32 export, which is not kept).
    Raises CheckpointError, ModelExistsError or VerificationError with a one-line message.
    """
    started = time.perf_counter()
    if not NAME_PATTERN.match(name):
        raise ModelKitError(
            f"--name: {name!r} is not a valid model name (lowercase letters, digits, . _ -)"
        )
    if task not in TASKS:
        raise ModelKitError(f"--task: {task!r} is not one of {', '.join(TASKS)}")
    if int8 and task in IMAGE_TASKS:
        raise ModelKitError("--int8: only text models are quantized (verified on sentences)")
    check_checkpoint(src, task)  # before anything is created under models_dir
    model_dir = models_dir / name
    current = _existing_task(model_dir)
    if current is not None and current != task:
        raise ModelKitError(
            f"{model_dir / 'model.yaml'}: field 'task' is {current!r}, but --task is {task!r}"
        )
    if version is None:
        version = next_version(model_dir)
    elif version < 1:
        raise ModelKitError(f"--version: {version} must be a positive integer")
    final = model_dir / str(version)
    if final.exists():
        raise ModelExistsError(
            f"{final}: version {version} already exists (versions are immutable)"
        )

    int8_report = None
    with staged_dir(final) as tmp:
        export = export_hf_checkpoint(src, tmp, task=task, progress=progress)
        if int8:
            if progress:
                progress("quantizing to int8")
            fp32 = tmp.parent / f"{tmp.name}-fp32.onnx"
            shutil.move(tmp / "model.onnx", fp32)
            try:
                q_started = time.perf_counter()
                quantize_int8(fp32, tmp / "model.onnx")
                if progress:
                    progress("verifying int8 against fp32")
                int8_report = verify_int8(
                    fp32,
                    tmp / "model.onnx",
                    tmp,
                    task=task,
                    quantize_seconds=time.perf_counter() - q_started,
                )
            finally:
                fp32.unlink(missing_ok=True)
        if progress:
            progress("moving into place")
    export.onnx_path = str(final / "model.onnx")
    if int8_report is not None:
        int8_report.onnx_path = export.onnx_path
    written = not (model_dir / "model.yaml").exists()
    write_model_yaml_if_absent(model_dir, default_model_config(src, task))
    return ImportReport(
        name=name,
        version=version,
        version_dir=str(final),
        task=task,
        int8=int8,
        model_yaml_written=written,
        seconds=round(time.perf_counter() - started, 3),
        export=export,
        int8_report=int8_report,
    )


__all__ = ["CheckpointError", "ImportReport", "import_checkpoint"]
