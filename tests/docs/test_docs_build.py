"""The docs site builds strictly, and its generated references match the code they describe."""

from __future__ import annotations

import html
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[2]
MKDOCS = str(Path(sys.executable).parent / "mkdocs")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {k: v for k, v in os.environ.items() if k != "OUTPOST_DOCS_LENIENT"}
    env["NO_MKDOCS_2_WARNING"] = "1"
    proc = subprocess.run(
        [MKDOCS, "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def page_text(site: Path, page: str) -> str:
    """The visible text of a built page (tags stripped, entities decoded)."""
    raw = (site / page / "index.html").read_text(encoding="utf-8")
    return html.unescape(re.sub(r"<[^>]+>", "", raw))


def table_cells(site: Path, page: str) -> set[str]:
    """The code spans that open a table row on a built page: the names a reference table lists."""
    raw = (site / page / "index.html").read_text(encoding="utf-8")
    return {html.unescape(m) for m in re.findall(r"<td><code>([^<]+)</code></td>", raw)}


def _fields(model: type[BaseModel]) -> set[str]:
    names = set()
    for name, info in model.model_fields.items():
        names.add(name)
        for arg in (info.annotation, *getattr(info.annotation, "__args__", ())):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                names |= _fields(arg)
    return names


def test_strict_build_renders_every_page(site: Path) -> None:
    for page in (
        "quickstart",
        "mobile",
        "models",
        "operations",
        "benchmarks",
        "api/origin",
        "api/edge",
        "reference/origin-settings",
        "reference/edge-config",
        "dev/bench",
    ):
        text = page_text(site, page)
        assert "outpost:gen" not in text and "Not generated" not in text, page


def test_contributors_bench_page_lists_every_bench_command(site: Path) -> None:
    from outpost.bench import BENCHMARKS

    commands = table_cells(site, "dev/bench")
    missing = [name for name in BENCHMARKS if f"./dev bench {name}" not in commands]
    assert len(BENCHMARKS) >= 10 and missing == []


def test_model_yaml_reference_lists_every_model_config_field(site: Path) -> None:
    from origin.repository.config import ModelConfig

    text = table_cells(site, "models")
    names = _fields(ModelConfig)
    assert {"task", "batching", "max_batch_size", "graph_optimization"} <= names
    missing = sorted(n for n in names if n not in text)
    assert not missing, f"model.yaml fields missing from docs/models.md: {missing}"


def test_metrics_reference_lists_every_exposed_metric(site: Path) -> None:
    from edge.core.stats import METRICS
    from origin.identity.component import build_origin_app
    from origin.settings import OriginSettings

    with tempfile.TemporaryDirectory() as empty:
        app = build_origin_app(OriginSettings(models_dir=Path(empty), watch=False))
    names = {m.name for m in app.state.metrics.registry.collect()} | set(METRICS)
    assert "outpost_origin_queue_size" in names and "outpost_vault_up" in names
    text = table_cells(site, "operations")
    text |= {n.removesuffix("_total") for n in text}  # counters are listed with their suffix
    missing = sorted(n for n in names if n not in text)
    assert not missing, f"metrics missing from docs/operations.md: {missing}"


def test_settings_references_list_every_env_var(site: Path) -> None:
    from edge.config import field_docs
    from origin.identity.settings import IdentitySettings
    from origin.secrets.settings import VaultSettings
    from origin.settings import OriginSettings

    origin_text = page_text(site, "reference/origin-settings")
    for cls in (OriginSettings, VaultSettings, IdentitySettings):
        prefix = cls.model_config["env_prefix"]
        for name in cls.model_fields:
            assert (prefix + name).upper() in origin_text
    edge_text = page_text(site, "reference/edge-config")
    for env, _, _ in field_docs():
        assert env in edge_text


def test_api_reference_lists_every_origin_path(site: Path) -> None:
    from origin.app import create_app
    from origin.settings import OriginSettings

    with tempfile.TemporaryDirectory() as empty:
        doc = create_app(OriginSettings(models_dir=Path(empty), watch=False)).openapi()
    text = page_text(site, "api/origin")
    for path, item in doc["paths"].items():
        for method in item:
            assert f"{method.upper()} {path}" in text
    assert "POST /oauth/token" in text


def _load_hooks():
    spec = importlib.util.spec_from_file_location(
        "outpost_docs_under_test", ROOT / "docs" / "_hooks" / "outpost_docs.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_broken_generator_fails_the_build_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    from mkdocs.exceptions import PluginError

    hooks = _load_hooks()

    def broken() -> str:
        raise ImportError("cannot import name 'ModelConfig'")

    monkeypatch.setitem(hooks.generators.GENERATORS, "model-config", broken)
    monkeypatch.delenv("OUTPOST_DOCS_LENIENT", raising=False)
    with pytest.raises(PluginError, match="model-config"):
        hooks.render("model-config")
    monkeypatch.setenv("OUTPOST_DOCS_LENIENT", "1")
    assert "Not generated" in hooks.render("model-config")


def test_benchmarks_page_says_not_yet_measured_for_missing_results(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    hooks = _load_hooks()
    monkeypatch.setattr(hooks.generators, "RESULTS_DIR", tmp_path)
    missing = "*Not yet measured* (no `bench/results/"  # the quantization table reads models/
    text = hooks.generators.benchmarks_reference()
    # origin, edge, peers, OIP transports, tracing, fairness, edge features, hostile
    # connections, device trust, caller proof, soak
    assert text.count(missing) == 11
    (tmp_path / "edge_bench.json").write_text('{"edge_cache_hit_rps": 12345, "errors": 0}')
    text = hooks.generators.benchmarks_reference()
    assert "12345" in text and text.count(missing) == 10
    cell = {"rps": 100.0, "p50_ms": 1.5, "p99_ms": 9.0, "errors": 0}
    transports = {
        "results": {"iris": {"32": {"http_json": cell, "http_binary": cell, "grpc": cell}}},
        "ratios": {"iris": {"32": {"binary_over_json": 1.0, "grpc_over_json": 1.0}}},
    }
    (tmp_path / "transports.json").write_text(json.dumps(transports))
    text = hooks.generators.benchmarks_reference()
    assert "| `iris` | 32 | 100 | 100 | 100 | 1.0x | 1.0x |" in text and text.count(missing) == 9


def test_fairness_results_show_the_victims_p99_against_its_bound(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    hooks = _load_hooks()
    monkeypatch.setattr(hooks.generators, "RESULTS_DIR", tmp_path)
    victim = {"requests": 500, "errors": 0, "p50_ms": 12.0, "p99_ms": 20.0}
    batches = {"batches": 90, "mean_size": 3.5, "mean_ms": 60.0, "share_over_100_ms": 0.01}
    row = {
        "batch": 1,
        "padded_tokens": 16,
        "batch_ms": 5.0,
        "us_per_token": 300,
        "inputs_per_s": 200,
    }
    result = {
        "model": "minilm",
        "version": 1,
        "when": "2026-12-06T10:00:00Z",
        "machine": {"cpus": 2},
        "batching": {"max_batch_ms": 100.0, "max_batch_size": 32, "max_batch_tokens": 1024},
        "seconds_per_phase": 30,
        "engine": {"short": [row], "long": [{**row, "batch_ms": 45.0}]},
        "engine_within_max_batch_ms": {"short": {"batch": 1, "share_of_best_throughput": 1.0}},
        "phases": {
            "idle": {"victim": victim, "batches": batches},
            "flood": {
                "victim": {**victim, "p99_ms": 95.5},
                "batches": batches,
                "flooder": {"clients": 2, "inputs_per_request": 128, "inputs_per_s": 45.0},
            },
        },
        "bound_ms": 120.0,
        "ratios": {"flood_p99_over_bound": 0.796, "one_queue_p99_over_flood_p99": 60.0},
        "targets": {"victim_p99_within_idle_p99_plus_max_batch_ms": True},
    }
    (tmp_path / "fairness.json").write_text(json.dumps(result))
    text = hooks.generators.benchmarks_reference()
    assert "| flood: another subject floods (subjects apart) | 500 | 12.0 | 95.5 | 45.0 |" in text
    assert "| victim p99 under the flood <= idle p99 + max_batch_ms | met |" in text
    assert "**120.0 ms**" in text and "| 1 | 5.0 | 300 | 200 | 45.0 |" in text
    result["targets"]["victim_p99_twice_as_good"] = False
    (tmp_path / "fairness.json").write_text(json.dumps(result))
    with pytest.raises(ValueError, match="no label for 'victim_p99_twice_as_good'"):
        hooks.generators.benchmarks_reference()


def test_tracing_results_show_the_event_loop_cost_and_name_a_chosen_sampling(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    hooks = _load_hooks()
    monkeypatch.setattr(hooks.generators, "RESULTS_DIR", tmp_path)
    result = {
        "model": "minilm",
        "clients": 32,
        "rounds": 8,
        "seconds_per_cell": 20.0,
        "date": "2026-12-06",
        "machine": "x86_64 2 cores",
        "default_sample_ratio": 0.1,
        "target_default_vs_off": 0.97,
        "rps_median": {"off": 300.0, "default": 290.0, "full": 250.0},
        "mean_batch_median": {"off": 30.0, "default": 29.0, "full": 27.0},
        "ratio_default_vs_off": {"median": 0.967},
        "ratio_full_vs_off": {"median": 0.85},
        "origin_cpu_us_per_request_median": {
            "off": {"main thread": 644.0},
            "default": {"main thread": 803.0},
            "full": {"main thread": 1033.0},
        },
        "cores_median": {"off": {"idle": 0.2}, "default": {"idle": 0.24}, "full": {"idle": 0.29}},
    }
    (tmp_path / "tracing.json").write_text(json.dumps(result))
    text = hooks.generators.benchmarks_reference()
    assert "| on, default sampling (0.1) | 290.0 | 0.967 | 29.0 | 803.0 | 0.24 |" in text
    (tmp_path / "tracing.json").write_text(json.dumps({**result, "sampling_chosen": True}))
    text = hooks.generators.benchmarks_reference()
    assert "| on, sampling 0.1 | 290.0 |" in text and "default sampling (0.1)" not in text


def test_benchmark_tables_label_every_result_and_show_no_raw_key(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = (site / "benchmarks" / "index.html").read_text(encoding="utf-8")
    cells = re.findall(r"<td>(.*?)</td>", raw)
    snake = [c for c in cells if re.fullmatch(r"(?:<code>)?[a-z0-9]+(?:_[a-z0-9]+)+.*", c)]
    assert not snake, f"raw result keys on the benchmarks page: {snake[:5]}"
    assert "latency the edge adds to a miss, p50 (ms)" in html.unescape(raw)

    # A result with a key nobody labelled fails the build rather than reaching the page raw.
    hooks = _load_hooks()
    (tmp_path / "edge_bench.json").write_text('{"edge_cache_hit_rps": 1, "new_thing_ms": 2}')
    monkeypatch.setattr(hooks.generators, "RESULTS_DIR", tmp_path)
    with pytest.raises(ValueError, match="no label for 'new_thing_ms'"):
        hooks.generators.benchmarks_reference()


def test_every_problem_type_raised_in_code_is_documented(site: Path) -> None:
    hooks = _load_hooks()
    found = hooks.generators.scan_problem_slugs()
    assert {"unauthorized", "rate-limited", "model-not-found", "overloaded"} <= set(found)
    undocumented = sorted(set(found) - set(hooks.generators.PROBLEM_ADVICE))
    assert not undocumented, f"add meaning/retry advice to PROBLEM_ADVICE for: {undocumented}"
    cells = table_cells(site, "operations")
    assert {f"urn:outpost:problem:{slug}" for slug in found} <= cells


def test_device_trust_and_long_input_results_state_their_verdicts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    hooks = _load_hooks()
    monkeypatch.setattr(hooks.generators, "RESULTS_DIR", tmp_path)
    trust = {"cpu_us": {"dpop": 123.4, "openssl": 70.0}, "dpop_target_us": 100.0}
    (tmp_path / "device_trust.json").write_text(json.dumps(trust))
    text = hooks.generators.benchmarks_reference()
    assert "within 100.0 µs of CPU: **not met**" in text and "| 123.4 |" in text
    window = {"batch": 1, "concurrency": 32, "sentences_per_s": 40.0, "p99_ms": 900.0}
    long_inputs = {
        "engine_limit": {"inputs_per_s": 50.0},
        "medians": {"1x32": {"share": 0.8, "vs_infinity": 1.1, "p99_vs_infinity": 0.9}},
        "windows": {"outpost-fp32": [window], "infinity-optimum": [{**window, "p99_ms": 1000.0}]},
        "target": {"rule": "at 32 clients >= 0.95x the engine's limit", "met": False},
        "vs_infinity": {"rule": "at or ahead of infinity", "met": True},
    }
    (tmp_path / "long-inputs.json").write_text(json.dumps(long_inputs))
    text = hooks.generators.long_inputs_reference()
    assert "| 1 x 32 | 40 | 0.8x | 40 | 1.1x | 0.9x |" in text
    assert "limit: **not met**" in text and "infinity: **met**" in text
