"""Writing into the model repository safely: version numbering, model.yaml, atomic renames.

The origin watches `models/`; a version folder must appear complete or not at all, so every
writer builds into a hidden temp folder beside the target and renames it into place.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

TMP_PREFIX = ".tmp-"


def existing_versions(model_dir: Path) -> list[int]:
    """Integer-named version folders already present (sorted)."""
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())


def next_version(model_dir: Path) -> int:
    """The next free version number (1 for an empty model folder)."""
    versions = existing_versions(model_dir)
    return (versions[-1] + 1) if versions else 1


def write_model_yaml_if_absent(model_dir: Path, config: dict[str, Any]) -> Path:
    """Write `model_dir/model.yaml` unless one exists already (a user's edits win)."""
    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / "model.yaml"
    if not path.exists():
        text = yaml.safe_dump(config, sort_keys=False)
        tmp = model_dir / f"{TMP_PREFIX}model.yaml"
        tmp.write_text(text)
        os.replace(tmp, path)
    return path


@contextlib.contextmanager
def staged_dir(final: Path) -> Iterator[Path]:
    """Yield a temp folder next to `final`; on success rename it to `final` atomically.

    Fails with FileExistsError if `final` already exists (versions are immutable). The temp
    folder is removed if the body raises.
    """
    if final.exists():
        raise FileExistsError(f"{final} already exists")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{final.name}-", dir=final.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; a model version is ordinary readable data
    try:
        yield tmp
        if final.exists():
            raise FileExistsError(f"{final} already exists")
        os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def copy_files(src_dir: Path, dst_dir: Path, names: list[str]) -> list[str]:
    """Copy the named files that exist in `src_dir`; return the names copied."""
    copied = []
    for name in names:
        src = src_dir / name
        if src.is_file():
            shutil.copy2(src, dst_dir / name)
            copied.append(name)
    return copied
