"""The local monitoring children of `outpost up --monitor`: a real Prometheus and a trace receiver.

Prometheus is Debian's `prometheus` package (`./dev up --monitor` installs it), run with the
project's alert and recording rules and a generated config that scrapes the stack's origins and
edge every few seconds. Traces go to `outpost.monitoring.receiver` (no trace viewer can be
installed from PyPI or Debian): it prints a line per request and answers `outpost trace <id>`.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import yaml

from outpost.errors import OutpostError

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "deploy" / "monitoring" / "rules"


def prometheus_binary() -> str:
    """Path of the `prometheus` server, or a clear error saying how to get it."""
    path = shutil.which("prometheus")
    if path is None:
        raise OutpostError(
            "prometheus is not installed (needed by --monitor)",
            hint="`./dev up --monitor` installs Debian's prometheus package when run as root; "
            "or: sudo apt-get install prometheus",
        )
    return path


def prometheus_config(
    origins: list[str], edges: list[str], *, interval: str = "5s", rules_dir: Path = RULES_DIR
) -> str:
    """Prometheus YAML scraping `host:port` targets under the job names the rules expect."""
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(rules_dir / "*.yml")],
        "scrape_configs": [
            {"job_name": "outpost-origin", "static_configs": [{"targets": origins}]},
            {"job_name": "outpost-edge", "static_configs": [{"targets": edges}]},
        ],
    }
    return yaml.safe_dump(config, sort_keys=False)


def prometheus_argv(config: Path, data_dir: Path, listen: str) -> list[str]:
    """The server's command line: warnings only on the console, a day of local data."""
    return [
        prometheus_binary(),
        f"--config.file={config}",
        f"--storage.tsdb.path={data_dir}",
        "--storage.tsdb.retention.time=1d",
        f"--web.listen-address={listen}",
        "--log.level=warn",
    ]


def write_prometheus_files(
    state_dir: Path, host: str, port: int, origins: list[str], edges: list[str]
) -> list[str]:
    """Write the config under `<state_dir>/monitoring/` and return the server's argv."""
    base = state_dir / "monitoring"
    (base / "prometheus-data").mkdir(parents=True, exist_ok=True)
    config = base / "prometheus.yml"
    config.write_text(prometheus_config(origins, edges))
    return prometheus_argv(config, base / "prometheus-data", f"{host}:{port}")


def receiver_argv(host: str, port: int, jsonl: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "outpost.monitoring.receiver",
        "--host",
        host,
        "--port",
        str(port),
        "--jsonl",
        str(jsonl),
    ]
