"""Stage the Worker's Python dependencies into `python_modules/` for wrangler.

wrangler uploads `python_modules/` (next to wrangler.toml) as the Worker's site-packages: we
put the `edge` package there plus the pure-Python wheel it needs (cachetools), so
`edge/entry.py` can `import edge.app` in production. Run: `python -m edge.vendor`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKER_DEPS = ("cachetools==8.0.2",)


def vendor(dest: Path = ROOT / "python_modules") -> Path:
    """(Re)create `dest` with the edge package and its pure-Python dependencies."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(dest),
            "--only-binary=:all:",
            *WORKER_DEPS,
        ],
        check=True,
    )
    shutil.copytree(
        ROOT / "edge",
        dest / "edge",
        ignore=shutil.ignore_patterns(
            "__pycache__", "*.pyc", "vendor.py", "server.py", "asgi.py", "__main__.py", "local.py"
        ),
    )
    for junk in dest.glob("*.dist-info"):
        shutil.rmtree(junk)
    return dest


if __name__ == "__main__":
    print(vendor())
