"""`wrangler deploy --dry-run` validates and bundles the Python Worker offline."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.edge.conftest import ROOT


def test_wrangler_dry_run_bundles_the_worker_offline(tmp_path: Path) -> None:
    wrangler = ROOT / "node_modules" / ".bin" / "wrangler"
    assert wrangler.exists(), "run `npm ci` first (package.json pins wrangler)"
    from edge.vendor import vendor

    vendored = ROOT / "python_modules"
    vendor(vendored)
    out = subprocess.run(
        [str(wrangler), "deploy", "--dry-run", "--outdir", str(tmp_path / "dist")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env={
            "PATH": str(Path(shutil.which("node") or "node").parent),
            "HOME": str(tmp_path),
            "WRANGLER_SEND_METRICS": "false",
            "CI": "true",
        },
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "--dry-run: exiting now." in out.stdout
    assert "python_modules/edge/app.py" in out.stdout or "Vendored Modules" in out.stdout
    assert (tmp_path / "dist" / "entry.py").exists()
