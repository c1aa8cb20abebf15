"""Reference pages generated from the code at docs build time (imported by `outpost_docs.py`).

Each public function returns Markdown. They import the product's own modules, so a renamed field,
a new metric or a broken import changes (or fails) the docs build instead of letting them drift.
"""

from __future__ import annotations

import ast
import html
import json
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = ROOT / "bench" / "results"


# -- small Markdown helpers ------------------------------------------------------------------------
def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _code(value: Any) -> str:
    text = str(value)
    if "|" in text:  # a pipe would split the table cell, and `\|` shows up inside backticks
        return "<code>" + html.escape(text).replace("|", "&#124;") + "</code>"
    return f"`{text}`" if text else ""


def table(headers: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    headers = list(headers)
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(out) + "\n"


# -- model.yaml reference (pydantic JSON schema) ---------------------------------------------------
def _schema_type(prop: dict[str, Any]) -> str:
    if "$ref" in prop:
        return prop["$ref"].rsplit("/", 1)[-1]
    if "enum" in prop:
        return " | ".join(json.dumps(v) for v in prop["enum"])
    if "const" in prop:
        return json.dumps(prop["const"])
    if "anyOf" in prop:
        return " | ".join(_schema_type(p) for p in prop["anyOf"])
    kind = prop.get("type", "any")
    if kind == "array":
        return f"list[{_schema_type(prop.get('items', {}))}]"
    return str(kind)


def _default(prop: dict[str, Any], required: bool) -> str:
    if required:
        return "**required**"
    if "default" in prop:
        return _code(json.dumps(prop["default"]))
    return "see below"


def _constraints(prop: dict[str, Any]) -> str:
    names = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
    parts = [f"{sym} {prop[key]}" for key, sym in names.items() if key in prop]
    for alt in prop.get("anyOf", []):
        parts += [f"{sym} {alt[key]}" for key, sym in names.items() if key in alt]
    return ", ".join(parts)


def schema_tables(schema: dict[str, Any], title_level: int = 3) -> str:
    """One table per object in a pydantic JSON schema: the model itself, then its `$defs`."""
    defs = schema.get("$defs", {})
    out = []
    objects = [(schema.get("title", "root"), schema), *sorted(defs.items())]
    for name, obj in objects:
        if obj.get("type") != "object" or "properties" not in obj:
            continue
        required = set(obj.get("required", []))
        rows = [
            (
                _code(field),
                _code(_schema_type(prop)),
                _default(prop, field in required),
                _constraints(prop),
                prop.get("description", ""),
            )
            for field, prop in obj["properties"].items()
        ]
        doc = (obj.get("description") or "").strip().splitlines()
        out.append(f"{'#' * title_level} `{name}`\n\n" + (doc[0] + "\n\n" if doc else ""))
        out.append(table(["field", "type", "default", "limits", "meaning"], rows))
    return "\n".join(out)


def model_config_reference() -> str:
    from origin.repository.config import ModelConfig

    return (
        "Generated from `origin.repository.config.ModelConfig` when the docs were built. "
        "Unknown keys are rejected (a typo is an error, not a silently ignored field).\n\n"
        + schema_tables(ModelConfig.model_json_schema())
    )


# -- settings references ---------------------------------------------------------------------------
def _settings_rows(cls: type) -> Iterator[tuple[str, str, str, str]]:
    prefix = cls.model_config.get("env_prefix", "")
    for name, info in cls.model_fields.items():
        default = info.get_default(call_default_factory=True)
        annotation = getattr(info.annotation, "__name__", None) or str(info.annotation)
        yield (
            _code((prefix + name).upper()),
            _code(annotation.replace("typing.", "").replace("pathlib.", "")),
            _code(json.dumps(default, default=str)),
            info.description or "",
        )


def settings_reference(*classes: type) -> str:
    out = []
    for cls in classes:
        doc = (cls.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        out.append(f"### `{cls.__module__}.{cls.__name__}`\n\n{doc}\n\n")
        out.append(table(["env var", "type", "default", "meaning"], _settings_rows(cls)))
    return "\n".join(out)


def origin_settings_reference() -> str:
    from origin.identity.settings import IdentitySettings
    from origin.secrets.settings import VaultSettings
    from origin.settings import OriginSettings

    return (
        "Generated from the pydantic-settings models when the docs were built. Every setting is "
        "an environment variable; `python -m origin` also takes `--host`, `--port`, "
        "`--models-dir`, `--log-level` and `--no-watch`.\n\n"
        + settings_reference(OriginSettings, VaultSettings, IdentitySettings)
    )


def edge_config_reference() -> str:
    from edge import config as edge_config

    out = [
        "Generated from the dataclasses in `edge/config.py` (each field's `metadata['doc']`) when "
        "the docs were built. In Workers these are `[vars]` or secrets in `wrangler.toml`; "
        "locally they are environment variables (JSON for lists and objects).\n\n",
        table(
            ["env var", "default", "meaning"],
            [(_code(env), _code(default), doc) for env, default, doc in edge_config.field_docs()],
        ),
    ]
    for cls in (
        edge_config.OriginSpec,
        edge_config.IssuerSpec,
        edge_config.RatePolicy,
        edge_config.CanaryRule,
    ):
        doc = (cls.__doc__ or "").strip()
        out.append(f"\n### `{cls.__name__}`\n\n{doc}\n\n")
        rows = [
            (_code(name.removeprefix(edge_config.ENV_PREFIX).lower()), _code(default), text)
            for name, default, text in edge_config.field_docs(cls)
        ]
        out.append(table(["key", "default", "meaning"], rows))
    return "".join(out)


# -- metrics ---------------------------------------------------------------------------------------
def _collectors(registry: Any) -> Iterator[Any]:
    from prometheus_client import CollectorRegistry

    for collector in list(registry._collector_to_names):
        if isinstance(collector, CollectorRegistry):
            yield from _collectors(collector)
        else:
            yield collector


def origin_metrics() -> list[dict[str, Any]]:
    """Every metric the origin's /metrics exposes, read from the app's real registry."""
    from origin.identity.component import build_origin_app
    from origin.settings import OriginSettings

    with tempfile.TemporaryDirectory() as empty:
        app = build_origin_app(OriginSettings(models_dir=Path(empty), watch=False))
    rows = []
    for collector in _collectors(app.state.metrics.registry):
        labels = tuple(getattr(collector, "_labelnames", ()))
        for metric in collector.describe():
            exposed = metric.name + "_total" if metric.type == "counter" else metric.name
            rows.append(
                {
                    "name": exposed,
                    "type": metric.type,
                    "labels": labels,
                    "help": metric.documentation,
                }
            )
    return rows


def edge_metrics() -> list[dict[str, Any]]:
    from edge.stats import METRICS

    return [
        {"name": name, "type": "counter", "labels": labels, "help": text}
        for name, (text, labels) in METRICS.items()
    ]


def metrics_reference() -> str:
    def rows(items: list[dict[str, Any]]) -> Iterator[tuple[str, ...]]:
        for m in items:
            yield (
                _code(m["name"]),
                m["type"],
                ", ".join(_code(lbl) for lbl in m["labels"]),
                m["help"],
            )

    return (
        "Generated from the origin app's Prometheus registry and `edge/stats.py` when the docs "
        "were built.\n\n### Origin (`GET /metrics` on each origin)\n\n"
        "Histograms expose `_bucket`, `_sum` and `_count` series.\n\n"
        + table(["metric", "type", "labels", "meaning"], rows(origin_metrics()))
        + "\n### Edge (`GET /metrics` on the local edge; Workers use Cloudflare analytics)\n\n"
        + table(["metric", "type", "labels", "meaning"], rows(edge_metrics()))
    )


# -- problem types ---------------------------------------------------------------------------------
_SLUG = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")

# What a client should do, by slug. A slug found in the code but missing here still gets a row
# (with advice derived from its status), so the table can't silently lose a problem type.
PROBLEM_ADVICE: dict[str, tuple[int, str, str]] = {
    "malformed-request": (400, "The body is not valid JSON (origin).", "no: fix the request"),
    "malformed": (400, "The body is not valid JSON or not an object (edge).", "no"),
    "binary-data-unsupported": (400, "OIP binary tensor extension is not supported.", "no"),
    "unauthorized": (401, "Missing, malformed, expired or unverifiable token.", "refresh once"),
    "forbidden": (403, "The token lacks the scope the endpoint needs.", "no"),
    "not-found": (404, "No such endpoint.", "no"),
    "model-not-found": (404, "Unknown model name.", "no"),
    "version-not-found": (404, "The model has no such version.", "no"),
    "method-not-allowed": (405, "Wrong HTTP method (see `Allow`).", "no"),
    "payload-too-large": (413, "Body over the origin's limit.", "no: send less"),
    "too-large": (413, "Body over the edge's limit.", "no: send less"),
    "image-too-large": (
        413,
        "An image has more pixels than `max_image_pixels` (checked before decoding).",
        "no: downscale it",
    ),
    "unsupported-media-type": (
        415,
        "Send `application/json` (image routes: or `multipart/form-data`).",
        "no",
    ),
    "unsupported-image-format": (415, "Not a JPEG, PNG, WebP or HEIC image.", "no: convert it"),
    "empty-image": (422, "An uploaded image has no bytes.", "no"),
    "invalid-image-data": (422, "An image in JSON is not base64 or a base64 data URL.", "no"),
    "corrupt-image": (422, "The image's header or data cannot be decoded.", "no"),
    "truncated-image": (422, "The image data ends early (an interrupted upload?).", "re-upload"),
    "invalid-request": (422, "Well-formed but invalid; `errors` lists fields.", "no"),
    "too-many-inputs": (422, "More inputs than one request may carry.", "no: split it"),
    "input-too-long": (422, "An input is over the model's limit (truncation: reject).", "no"),
    "wrong-task": (422, "The model does not do this task (e.g. embeddings).", "no"),
    "unsupported-dimensions": (422, "`dimensions` differs from the model's.", "no"),
    "unknown-output": (422, "OIP request names an output the model lacks.", "no"),
    "invalid-tensor": (422, "OIP tensor data does not match its shape or type.", "no"),
    "rate-limited": (429, "The edge's per-subject rate limit.", "yes, after `Retry-After`"),
    "overloaded": (429, "The model's queue is full.", "yes, after `Retry-After`"),
    "internal": (500, "A bug: reported with the request id.", "at most once"),
    "bad-gateway": (502, "No origin could be reached.", "yes, with backoff"),
    "unavailable": (503, "No origin available / model reloading.", "yes, with backoff"),
    "model-not-ready": (503, "The model has no ready version yet.", "yes, with backoff"),
    "token-issuing-unavailable": (
        503,
        "Vault transit cannot sign tokens.",
        "yes, after `Retry-After`",
    ),
    "jwks-unavailable": (503, "Signing keys not loaded yet.", "yes, after `Retry-After`"),
    "gateway-timeout": (504, "The origin did not answer in time.", "yes, with backoff"),
}


def _call_name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def scan_problem_slugs(parts: Iterable[str] = ("origin", "edge")) -> dict[str, set[str]]:
    """slug -> tiers whose source raises it (calls to Problem()/problem(), `slug = ...`)."""
    found: dict[str, set[str]] = {}
    for part in parts:
        for path in sorted((ROOT / part).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                values: list[ast.expr] = []
                first_only = True
                if isinstance(node, ast.Call) and _call_name(node.func).lstrip("_") in (
                    "problem",
                    "Problem",
                    "ImageError",  # origin.engine.images: (status, slug, message)
                    "UploadError",  # edge.uploads: (status, slug, detail)
                ):
                    values = list(node.args[:3])  # the slug is the first slug-like argument
                elif isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "slug" for t in node.targets
                ):
                    values = [n for n in ast.walk(node.value) if isinstance(n, ast.Constant)]
                    first_only = False  # e.g. slug = "forbidden" if ... else "unauthorized"
                for value in values:
                    if (
                        isinstance(value, ast.Constant)
                        and isinstance(value.value, str)
                        and _SLUG.match(value.value)
                    ):
                        found.setdefault(value.value, set()).add(part)
                        if first_only:
                            break
    return found


def problems_reference() -> str:
    found = scan_problem_slugs()
    rows = []
    for slug, tiers in sorted(
        found.items(), key=lambda kv: (PROBLEM_ADVICE.get(kv[0], (0,))[0], kv[0])
    ):
        status, meaning, retry = PROBLEM_ADVICE.get(slug, (0, "", ""))
        if not retry:
            retry = "see status"
        rows.append(
            (
                _code(f"urn:outpost:problem:{slug}"),
                status or "?",
                ", ".join(sorted(tiers)),
                meaning,
                retry,
            )
        )
    return (
        "Generated by scanning `origin/` and `edge/` for the problem types they raise.\n\n"
        + table(["type", "status", "raised by", "meaning", "retry?"], rows)
    )


# -- API reference (OpenAPI) -----------------------------------------------------------------------
def origin_openapi() -> dict[str, Any]:
    """The origin's OpenAPI document, with the identity routes the Vault component mounts."""
    from fastapi import FastAPI

    from origin.app import create_app
    from origin.identity.metrics import VaultMetrics
    from origin.identity.router import build_router
    from origin.identity.settings import IdentitySettings
    from origin.settings import OriginSettings

    with tempfile.TemporaryDirectory() as empty:
        app: FastAPI = create_app(OriginSettings(models_dir=Path(empty), watch=False))
    # The identity component wires its routes at start-up (it needs Vault); the handlers
    # never run here, so the router can be built with no issuer behind it.
    app.include_router(build_router(IdentitySettings(), None, None, VaultMetrics()))  # type: ignore[arg-type]
    return app.openapi()


def _ref_name(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if schema.get("type") == "array":
        return f"list[{_ref_name(schema.get('items', {}))}]"
    if "anyOf" in schema:
        return " or ".join(_ref_name(s) for s in schema["anyOf"])
    return schema.get("title") or schema.get("type", "object")


def openapi_markdown(doc: dict[str, Any], schemas_intro: str = "") -> str:
    """Paths as sections (one per method), parameters and bodies as tables, then the schemas."""
    out = [
        f"Generated from the OpenAPI {doc.get('openapi', '')} document of "
        f"**{doc['info']['title']}** {doc['info'].get('version', '')} at build time.\n\n"
    ]
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            if method not in ("get", "post", "put", "delete", "patch", "head"):
                continue
            out.append(f"### `{method.upper()} {path}`\n\n")
            if op.get("summary"):
                out.append(f"**{op['summary']}**\n\n")
            if op.get("description"):
                out.append(op["description"].strip() + "\n\n")
            params = op.get("parameters", [])
            if params:
                out.append(
                    table(
                        ["parameter", "in", "type", "required", "meaning"],
                        [
                            (
                                _code(p["name"]),
                                p.get("in", ""),
                                _code(_schema_type(p.get("schema", {}))),
                                "yes" if p.get("required") else "no",
                                p.get("description", ""),
                            )
                            for p in params
                        ],
                    )
                    + "\n"
                )
            body = op.get("requestBody")
            if body:
                kinds = ", ".join(
                    f"`{ctype}` ({_ref_name(media.get('schema', {}))})"
                    for ctype, media in body.get("content", {}).items()
                )
                out.append(f"Request body: {kinds}\n\n")
            responses = [
                (
                    code,
                    resp.get("description", ""),
                    ", ".join(
                        f"`{ctype}` {_ref_name(media.get('schema', {}))}"
                        for ctype, media in resp.get("content", {}).items()
                    ),
                )
                for code, resp in op.get("responses", {}).items()
            ]
            if responses:
                out.append(table(["status", "meaning", "body"], responses) + "\n")
    schemas = doc.get("components", {}).get("schemas", {})
    if schemas:
        out.append("## Schemas\n\n" + schemas_intro)
        out.append(schema_tables({"$defs": schemas}, title_level=3))
    return "".join(out)


def origin_api_reference() -> str:
    """The origin's OpenAPI document as a page (origin.api.openapi_doc adds the request bodies)."""
    return openapi_markdown(
        origin_openapi(),
        schemas_intro="Request bodies with unknown or wrong fields are answered `422` "
        "problem+json naming the field.\n\n",
    )


def _pretty_route(pattern: str) -> str:
    """Regex to template, e.g. `(?:/versions/(seg))?` -> `[/versions/{version}]`."""
    seg = "([A-Za-z0-9][A-Za-z0-9._-]{0,127})"
    text = pattern.replace(seg, "{model}", 1).replace(seg, "{version}", 1)
    text = text.replace("[^/]+", "{model}").replace("\\.", ".")
    text = re.sub(r"\((?:\?:)?([^()?]*\|[^()?]*)\)", r"{\1}", text)  # alternatives
    while True:  # optional groups, innermost first
        new = re.sub(r"\(\?:([^()]*)\)\?", r"[\1]", text)
        if new == text:
            return new
        text = new


def edge_api_reference() -> str:
    """The edge's route table (`edge/routes.py`): what each path needs before it is forwarded."""
    from edge import routes

    rows = []
    for pattern, route in routes._TABLE:
        rows.append(
            (
                _code(_pretty_route(pattern.pattern)),
                ", ".join(route.methods),
                _code(route.scope) if route.scope else "none (limited per client IP)",
                _code(route.rate_class),
                "yes" if route.cacheable else "no",
                "answered by the edge"
                if route.local
                else ("retried on another origin" if route.retryable else "forwarded once"),
            )
        )
    return (
        "Generated from the route table in `edge/routes.py` at build time. The edge has no "
        "OpenAPI document of its own: every forwarded path has the origin's contract (see the "
        "[origin API](origin.md)), with the edge adding authentication, rate limits, caching "
        "and the problem types listed in [Operations](../operations.md#problem-types).\n\n"
        + table(["path", "methods", "token scope", "rate class", "cached", "handling"], rows)
    )


# -- benchmarks ------------------------------------------------------------------------------------
def _load_result(name: str) -> dict[str, Any] | None:
    path = RESULTS_DIR / name
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _not_measured(name: str, command: str) -> str:
    return f"*Not yet measured* (no `bench/results/{name}`; run `{command}`).\n\n"


def _origin_load(data: dict[str, Any]) -> str:
    engine = data.get("engine", {})
    served = {r["clients"]: r for r in data.get("served", [])}
    naive = {r["clients"]: r for r in data.get("naive", [])}
    rows = []
    for clients in sorted(served):
        s, n = served[clients], naive.get(clients, {})
        ratio = data.get("ratios", {}).get(str(clients), {})
        rows.append(
            (
                clients,
                round(s.get("rps", 0)),
                s.get("p50_ms"),
                s.get("p99_ms"),
                round(n["rps"]) if n.get("rps") else "-",
                ratio.get("served_over_limit", "-"),
                ratio.get("served_over_naive", "-"),
            )
        )
    head = (
        f"Model `{data.get('model')}` version {data.get('version')}, measured {data.get('when')} "
        f"on {data.get('machine', {}).get('cpus')} CPUs. Engine limit (in-process, best batch): "
        f"**{engine.get('limit_rps', '?')}** sentences/s; raw batch-1 p50 "
        f"{engine.get('batch1_p50_ms', '?')} ms.\n\n"
    )
    targets = data.get("targets", {})
    tail = ""
    if targets:
        tail = "\nTargets of the run:\n\n" + table(
            ["target", "value"], [(_code(k), v) for k, v in targets.items()]
        )
    return (
        head
        + table(
            [
                "clients",
                "origin req/s",
                "p50 ms",
                "p99 ms",
                "naive req/s",
                "origin / limit",
                "origin / naive",
            ],
            rows,
        )
        + tail
    )


def _flat(data: dict[str, Any], labels: dict[str, str] | None = None) -> str:
    rows = [
        ((labels or {}).get(k, _code(k)), v)
        for k, v in data.items()
        if not isinstance(v, dict | list)
    ]
    return table(["measure", "value"], rows)


_EDGE_LABELS = {
    "constant_app_rps": "minimal uvicorn app returning a constant (req/s)",
    "edge_cache_hit_rps": "edge answering cache hits (req/s)",
    "hit_ratio_vs_constant": "cache-hit throughput / constant app (median of rounds)",
    "hit_ratio_vs_constant_spread": "cache-hit throughput / constant app (spread over rounds)",
    "miss_p50_direct_ms": "miss: p50 calling the origin directly (ms)",
    "miss_p50_via_edge_ms": "miss: p50 through the edge (ms)",
    "miss_added_p50_ms": "latency the edge adds to a miss (ms, p50)",
}


def _peers(data: dict[str, Any]) -> str:
    """Key cell (32 clients, short single inputs): median over rounds per server."""
    import statistics

    labels = {k: v.get("label", k) for k, v in data.get("settings", {}).get("servers", {}).items()}
    cells: dict[str, list[dict[str, Any]]] = {}
    for run in data.get("runs", []):
        for cell in run.get("cells", []):
            if (cell.get("input"), cell.get("batch"), cell.get("concurrency")) == ("short", 1, 32):
                cells.setdefault(run["server"], []).append(cell)
    medians = {
        server: statistics.median(c["sentences_per_s"] for c in found)
        for server, found in cells.items()
    }
    rows = [
        (
            labels.get(server, server),
            f"{medians[server]:.0f}",
            f"{statistics.median(c['p99_ms'] or 0 for c in found):.0f}",
            len(found),
        )
        for server, found in cells.items()
    ]
    text = table(["server", "sentences/s (median)", "p99 ms (median)", "rounds"], rows)
    if "outpost-int8" in medians and medians.get("outpost-fp32"):
        ratio = medians["outpost-int8"] / medians["outpost-fp32"]
        text += f"\nint8 / fp32 throughput of the origin in the same run: **{ratio:.2f}x**.\n"
    return "Key cell: 32 clients, short inputs, one sentence per request.\n\n" + text + "\n"


def _soak(data: dict[str, Any]) -> str:
    """The soak run: totals per kind, latency per minute, RSS growth per process."""
    targets = data.get("targets", {})
    head = (
        f"Measured {data.get('when')} on {data.get('machine', {}).get('cpus')} CPUs: "
        f"{data.get('duration_minutes')} minutes of steady traffic "
        f"({data.get('edge_rps')} req/s through the edge, {data.get('origin_rps')} req/s straight "
        f"to an origin), {data.get('requests')} requests, **{data.get('errors')} errors**. "
        f"RSS growth is measured from the end of the {data.get('warmup_minutes')}-minute warm-up"
    )
    if data.get("edge_cache_max_mb") is not None:
        head += (
            f"; the edge's response cache was bounded at {data['edge_cache_max_mb']} MiB so that "
            "it is full by then (its size over time is in the JSON)"
        )
    head += ".\n\n"
    kinds = table(
        ["traffic", "requests", "errors", "p50 ms", "p99 ms"],
        [
            (_code(k), v["requests"], v["errors"], v["p50_ms"], v["p99_ms"])
            for k, v in data.get("by_kind", {}).items()
        ],
    )
    minutes = table(
        ["minute", "requests", "errors", "p50 ms", "p99 ms"],
        [
            (m["minute"], m["requests"], m["errors"], m["p50_ms"], m["p99_ms"])
            for m in data.get("per_minute", [])
        ],
    )
    rss = table(
        ["process", "RSS after warm-up (MB)", "RSS at the end (MB)", "max (MB)", "growth"],
        [
            (
                name,
                g["rss_mb_after_warmup"],
                g["rss_mb_end"],
                g["rss_mb_max"],
                f"{g['growth_pct']:+.2f} %",
            )
            for name, g in data.get("rss_growth_after_warmup", {}).items()
        ],
    )
    verdict = ", ".join(f"`{k}`: {'met' if v else '**not met**'}" for k, v in targets.items())
    return (
        head
        + kinds
        + "\nPer minute (all traffic):\n\n"
        + minutes
        + "\nMemory:\n\n"
        + rss
        + (f"\nTargets: {verdict}.\n" if verdict else "")
    )


def soak_reference() -> str:
    data = _load_result("soak.json")
    if not data:
        return _not_measured("soak.json", ".venv/bin/python bench/soak.py")
    return _soak(data)


def _http_clients(data: dict[str, Any]) -> str:
    rows = [
        (name, v["cpu_us_per_request"], v["wall_us_per_request"])
        for name, v in data.get("clients", {}).items()
    ]
    return (
        f"Measured {data.get('when')}: one small JSON POST answered with an embedding-sized body "
        "on loopback, sequential, interleaved rounds (medians).\n\n"
        + table(["client", "client CPU µs / request", "wall µs / request"], rows)
        + f"\nhttpx / aiohttp client CPU: **{data.get('httpx_cpu_over_aiohttp')}x**. The local "
        "edge forwards with aiohttp for this reason ([the edge guide](edge.md#performance)).\n"
    )


def _gzip_table(data: dict[str, Any]) -> str:
    rows = [
        (
            r["body"],
            r["body_bytes"],
            r["level"],
            r["zlib_cpu_us"],
            r["isal_cpu_us"],
            f"{r['isal_over_zlib_cpu']}x",
            r["zlib_bytes"],
            r["isal_bytes"],
            f"{r['isal_over_zlib_bytes']}x",
        )
        for r in data.get("rows", [])
    ]
    versions = data.get("versions", {})
    return (
        f"Measured {data.get('when')} (isal {versions.get('isal')}, zlib {versions.get('zlib')}): "
        "answers shaped like the origin's, CPU µs per answer (medians of interleaved rounds).\n\n"
        + table(
            [
                "answer",
                "bytes",
                "level",
                "zlib µs",
                "ISA-L µs",
                "ISA-L / zlib CPU",
                "zlib bytes",
                "ISA-L bytes",
                "ISA-L / zlib size",
            ],
            rows,
        )
        + "\nThe Worker compresses with zlib, the local edge with ISA-L "
        "([the edge guide](edge.md#cache)).\n"
    )


def quantization_table(models_dir: Path | None = None) -> str:
    """fp32 vs int8 numbers from the build stamps (`.build.json`) the model builder writes."""
    models_dir = models_dir or ROOT / "models"
    rows = []
    for stamp_path in sorted(models_dir.glob("*/*/.build.json")):
        stamp = json.loads(stamp_path.read_text(encoding="utf-8"))
        q = stamp.get("int8")
        if not q:
            continue
        rows.append(
            (
                f"`{stamp.get('model')}` v{stamp.get('version')}",
                f"{q['fp32_bytes'] / 1e6:.1f} MB",
                f"{q['int8_bytes'] / 1e6:.1f} MB",
                f"{q['mean_cosine']:.4f}" if q.get("mean_cosine") is not None else "-",
                f"{q['min_cosine']:.4f}" if q.get("min_cosine") is not None else "-",
                q.get("argmax_agreement") if q.get("argmax_agreement") is not None else "-",
            )
        )
    if not rows:
        return "*Not yet measured* (no int8 model has been built; run `./dev models build-demo`).\n"
    return table(
        ["model", "fp32 size", "int8 size", "mean cosine vs fp32", "min cosine", "top-1 agreement"],
        rows,
    )


def benchmarks_reference() -> str:
    out = ["### Origin throughput and latency (`bench/origin_load.py`)\n\n"]
    data = _load_result("origin_load.json")
    out.append(
        _origin_load(data) if data else _not_measured("origin_load.json", "./dev bench origin")
    )
    out.append("\n### Edge overhead (`bench/edge_bench.py`)\n\n")
    data = _load_result("edge_bench.json")
    out.append(
        _flat(data, _EDGE_LABELS)
        if data
        else _not_measured("edge_bench.json", ".venv/bin/python bench/edge_bench.py")
    )
    out.append("\n### Against peers (`bench/peers/`)\n\n")
    data = _load_result("peers.json")
    if data:
        out.append(_peers(data))
        out.append(
            f"Measured {data.get('date', '')}; full tables, method and chart on "
            "[Benchmarks against peers](benchmarks-peers.md).\n\n"
        )
    else:
        out.append(
            _not_measured("peers.json", "bench/peers/run.py")
            + "Method: [Benchmarks against peers](benchmarks-peers.md).\n\n"
        )
    data = _load_result("http_clients.json")
    if data:
        out.append("\n### Edge forwarding client (`bench/http_clients.py`)\n\n")
        out.append(_http_clients(data))
    data = _load_result("gzip.json")
    if data:
        out.append("\n### Edge gzip (`bench/gzip_bench.py`)\n\n")
        out.append(_gzip_table(data))
    out.append("\n### Soak (`bench/soak.py`)\n\n")
    out.append(soak_reference())
    out.append("\n### Quantization (model build stamps)\n\n")
    out.append(quantization_table())
    known = {
        *("origin_load.json", "edge_bench.json", "peers.json", "soak.json"),
        *("http_clients.json", "gzip.json"),
    }
    for path in sorted(RESULTS_DIR.glob("*.json")) if RESULTS_DIR.is_dir() else []:
        if path.name not in known:
            out.append(f"\n### `{path.name}`\n\n" + _flat(json.loads(path.read_text())))
    return "".join(out)


GENERATORS = {
    "model-config": model_config_reference,
    "origin-settings": origin_settings_reference,
    "edge-config": edge_config_reference,
    "metrics": metrics_reference,
    "problems": problems_reference,
    "api-origin": origin_api_reference,
    "api-edge": edge_api_reference,
    "benchmarks": benchmarks_reference,
    "soak": soak_reference,
    "quantization": quantization_table,
}


# -- model.yaml validation errors (real messages, produced by the real validator) ------------------
MODEL_YAML_MISTAKES: list[tuple[str, str]] = [
    ("description: my model", "add `task:` (embeddings, text-classification or tensor)"),
    ("task: embedding", "use one of the listed task names (`embeddings`, plural)"),
    ("task: embeddings\nversion_policy: pinned", "add `pinned_version: <n>` or use `latest`"),
    ("task: embeddings\nmax_seq_length: 128", "the key is `max_sequence_length`"),
    ("task: embeddings\nbatching: {max_batch_size: 0}", "use a batch size of at least 1"),
    ("task: embeddings\npooling: max", "use `mean` or `cls`"),
    ("task: text-classification\ntop_k: zero", "give an integer"),
]


def model_errors_reference() -> str:
    import yaml

    from origin.repository.config import ModelFolderError, parse_model_config

    rows = []
    for text, fix in MODEL_YAML_MISTAKES:
        try:
            parse_model_config(yaml.safe_load(text), "models/demo/model.yaml")
        except ModelFolderError as exc:
            message = str(exc)
        else:
            raise AssertionError(f"model.yaml example is valid, expected an error: {text!r}")
        rows.append(
            ("<code>" + html.escape(text).replace("\n", "<br>") + "</code>", _code(message), fix)
        )
    return (
        "Produced by running the origin's own validator on each snippet when the docs were "
        "built; `outpost models validate` and the origin's `/v1/models` (`config_error`) report "
        "the same text.\n\n" + table(["model.yaml", "error", "fix"], rows)
    )


GENERATORS["model-errors"] = model_errors_reference
