"""Build the demo MiniLM model repository for the origin runs (project venv only).

    .venv/bin/python bench/peers/prepare_models.py OUT_DIR

Builds `minilm` (version 1 fp32, version 2 int8) with `outpost.modelkit.demo.build_minilm` into
OUT_DIR/all, then makes OUT_DIR/v1 and OUT_DIR/v2: repositories holding only that one version
(hard links, no copies) and the project's `models/minilm/model.yaml` pinned to it, so each
origin run serves exactly the precision being measured, with the project's batching settings.
OUT_DIR/v1-shared is version 1 with the threads setting the model guide suggests when other busy
processes share the origin's cores (`SHARED_CORES`, measured by edge_floor.py); OUT_DIR/v1-sleep
is version 1 with onnxruntime's threads sleeping between operators instead of spinning briefly
(`SLEEPING_THREADS`, the default before 2026-12-06, measured by threads_spin.py); OUT_DIR/v1-wide
is version 1 with the batch token budget of before (`WIDE_BATCHES`, measured by long_inputs.py).
Prints a JSON object mapping "models_dir_v1"/"models_dir_v2"/"models_dir_v1_<variant>" to them.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
QUEUE_ITEMS = 2048
SHARED_CORES = {"onnx": {"intra_op_threads": 1}, "batching": {"max_concurrent_batches": 2}}
SLEEPING_THREADS = {"onnx": {"allow_spinning": False}}
# The batch token budget before 2026-12-06 (now 1024), measured by long_inputs.py.
WIDE_BATCHES = {"batching": {"max_batch_tokens": 8192}}


def single_version_repo(
    src_model: Path, version: int, dest_root: Path, extra: dict | None = None
) -> Path:
    """dest_root/<model>/{model.yaml pinned to version, <version>/...} linked from src_model."""
    dest_model = dest_root / src_model.name
    if dest_root.exists():
        shutil.rmtree(dest_root)
    dest_model.mkdir(parents=True)
    config = yaml.safe_load((ROOT / "models" / src_model.name / "model.yaml").read_text())
    config.update(version_policy="pinned", pinned_version=version)
    # Peers queue without bound; the default bound (256 items) answers 429 to 32 clients x 16
    # inputs. Raise it so every cell measures serving, not load shedding.
    config.setdefault("batching", {})["max_queue_size"] = QUEUE_ITEMS
    for section, values in (extra or {}).items():
        config.setdefault(section, {}).update(values)
    (dest_model / "model.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    shutil.copytree(src_model / str(version), dest_model / str(version), copy_function=os.link)
    return dest_root


def main() -> None:
    from outpost.modelkit.demo import build_minilm

    out = Path(sys.argv[1]).resolve()
    repo, cache = out / "all", out / "cache"
    repo.mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    model = repo / "minilm"
    if not ((model / "1" / "model.onnx").exists() and (model / "2" / "model.onnx").exists()):
        build_minilm(repo, cache)
    dirs = {f"models_dir_v{v}": str(single_version_repo(model, v, out / f"v{v}")) for v in (1, 2)}
    variants = (("shared", SHARED_CORES), ("sleep", SLEEPING_THREADS), ("wide", WIDE_BATCHES))
    for variant, extra in variants:
        dirs[f"models_dir_v1_{variant}"] = str(
            single_version_repo(model, 1, out / f"v1-{variant}", extra)
        )
    print(json.dumps(dirs))


if __name__ == "__main__":
    main()
