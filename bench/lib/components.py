"""How a benchmark starts Outpost's own processes, as users run them: the origin and the edge
(command lines and settings; `procs.start_server` runs them), or the whole local stack.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.lib import procs

# Far above any load a benchmark sends: the edge's rate limits must never answer 429.
UNLIMITED = {"rate": 1e6, "burst": 1_000_000}


def ensure_demo_models(models_dir: Path) -> None:
    """The demo models in `models_dir`, copied from the checkout's build cache (where setup
    built them once; a stale or missing one is built there)."""
    from outpost.modelkit.demo import build_demo_models

    build_demo_models(models_dir, cache_dir=procs.ROOT / ".outpost" / "cache" / "models")


def origin_argv(
    port: int, models_dir: Path | str, python: Path | str = sys.executable
) -> list[str]:
    """`python -m origin` on `port` serving `models_dir` (other settings: OUTPOST_ORIGIN_*)."""
    return [str(python), "-m", "origin", "--port", str(port), "--models-dir", str(models_dir)]


def edge_argv(port: int, origin_url: str, python: Path | str = sys.executable) -> list[str]:
    """`python -m edge` on `port` in front of one origin, logging warnings only."""
    argv = [str(python), "-m", "edge", "--port", str(port), "--log-level", "warning"]
    return [*argv, "--origin", origin_url]


def edge_env(issuer_url: str, jwks_url: str, **settings: Any) -> dict[str, str]:
    """`OUTPOST_EDGE_*` variables: trust one token issuer (audience `outpost`), rate and work
    limits out of the way (one subject sends the whole load), plus `settings` (name -> value;
    JSON-encoded unless a string; None leaves the setting out, e.g. for an older edge)."""
    values: Mapping[str, Any] = {
        "issuers": [{"issuer": issuer_url, "jwks_url": jwks_url, "audience": "outpost"}],
        "rate_limits": {"inference": UNLIMITED, "default": UNLIMITED},
        "work_limits": {"inference": UNLIMITED, "images": UNLIMITED},
        **settings,
    }
    return {
        "OUTPOST_EDGE_" + name.upper(): value if isinstance(value, str) else json.dumps(value)
        for name, value in values.items()
        if value is not None
    }


@dataclass
class Stack:
    """A running `outpost up` (OpenBao, two origins, the edge) and the state it wrote."""

    server: procs.Server
    state_file: Path
    state: dict[str, Any]

    def token(self, scope: str = "inference models:read") -> str:
        """A fresh access token from the stack's own issuer (the demo service's credentials)."""
        from outpost.localtoken import fetch_local_token

        return fetch_local_token(self.state_file, scope)

    def caller_headers(self, method: str, target: str) -> dict[str, str]:
        """What an internal service sends an origin of this stack (which requires caller
        proofs): a proof signed with the caller key, read from Vault with the admin AppRole."""
        import base64
        import time
        import uuid

        from origin.caller import sign
        from vault import caller_key
        from vault.bootstrap import admin_client
        from vault.server import StatePaths

        if not hasattr(self, "_caller_key"):
            paths = StatePaths(Path(self.state["vault"]["state_dir"]))
            setting = caller_key.current_setting(admin_client(self.state["vault"]["addr"], paths))
            kid, _, key = setting.partition(":")
            self._caller_key = (kid, base64.b64decode(key))
        kid, key = self._caller_key
        rid = uuid.uuid4().hex
        proof = sign(key, kid, int(time.time()), method, target, rid, "svc:bench")
        return {"x-outpost-caller": proof, "x-request-id": rid}

    def stop(self) -> None:
        """Ctrl-C, as a user would; SIGKILL after a minute."""
        self.server.stop(signal.SIGINT, timeout=60)


def start_stack(
    state_dir: Path, settings: Mapping[str, str] | None = None, timeout: float = 300
) -> Stack:
    """`python -m outpost up` on free ports with its own state folder and `settings` (env
    variables, e.g. OUTPOST_EDGE_*), demo models from the checkout's build cache; returns once
    it has written its state file (every part healthy)."""
    vault, origin_1, origin_2, edge = (procs.free_port() for _ in range(4))
    env = procs.clean_env(
        {
            "OUTPOST_STACK_STATE_DIR": str(state_dir),
            "OUTPOST_STACK_CACHE_DIR": str(procs.ROOT / ".outpost" / "cache"),
            **(settings or {}),
        }
    )
    argv = [sys.executable, "-m", "outpost", "up", "--vault-port", str(vault)]
    argv += ["--origin-ports", f"{origin_1},{origin_2}", "--edge-port", str(edge)]
    state_dir.mkdir(parents=True, exist_ok=True)
    server = procs.spawn(argv, state_dir / "up.log", env=env)
    state_file = state_dir / "stack.json"
    procs.wait_until(server, state_file.exists, "outpost up", timeout)
    return Stack(server, state_file, json.loads(state_file.read_text()))
