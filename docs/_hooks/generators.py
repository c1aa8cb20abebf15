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
from collections.abc import Callable, Iterable, Iterator
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


def _name(value: str) -> str:
    """A setting's name as code that may wrap only after an underscore (never mid-word)."""
    return "<code>" + html.escape(value).replace("_", "_<wbr>") + "</code>"


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
            _name((prefix + name).upper()),
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
    from origin.tracing import TracingSettings

    return (
        "Generated from the pydantic-settings models when the docs were built. Every setting is "
        "an environment variable; `python -m origin` also takes `--host`, `--port`, "
        "`--models-dir`, `--log-level`, `--log-format` and `--no-watch`.\n\n"
        + settings_reference(OriginSettings, VaultSettings, IdentitySettings, TracingSettings)
    )


def edge_config_reference() -> str:
    from edge import config as edge_config

    out = [
        "Generated from the dataclasses in `edge/config.py` (each field's `metadata['doc']`) when "
        "the docs were built. In Workers these are `[vars]` or secrets in `wrangler.toml`; "
        "locally they are environment variables (JSON for lists and objects).\n\n",
        table(
            ["env var", "default", "meaning"],
            [(_name(env), _code(default), doc) for env, default, doc in edge_config.field_docs()],
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
            (_name(name.removeprefix(edge_config.ENV_PREFIX).lower()), _code(default), text)
            for name, default, text in edge_config.field_docs(cls)
        ]
        out.append(table(["key", "default", "meaning"], rows))
    return "".join(out)


# -- metrics ---------------------------------------------------------------------------------------
def origin_metrics() -> list[dict[str, Any]]:
    """Every metric the origin's /metrics exposes (`outpost.monitoring.catalog`)."""
    from dataclasses import asdict

    from outpost.monitoring.catalog import origin_metrics as registered

    return [asdict(m) for m in registered()]


def edge_metrics() -> list[dict[str, Any]]:
    from dataclasses import asdict

    from outpost.monitoring.catalog import edge_metrics as registered

    return [asdict(m) for m in registered()]


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
    "malformed-tensor": (
        400,
        "OIP tensor bytes do not decode: binary sizes, BYTES lengths or shape disagree.",
        "no: fix the request",
    ),
    "unknown-datatype": (400, "An OIP tensor's datatype is unknown or not supported.", "no"),
    "unsupported-parameter": (
        400,
        "A Triton extension the origin lacks (shared memory, classification).",
        "no",
    ),
    "unauthorized": (401, "Missing, malformed, expired or unverifiable token.", "refresh once"),
    "forbidden": (403, "The token lacks the scope the endpoint needs.", "no"),
    "caller-unproven": (
        401,
        "An origin called without a valid caller proof (only the edge and internal services "
        "holding the caller key are answered); through the edge it becomes a 502.",
        "no: call through the edge",
    ),
    "attestation-failed": (
        401,
        "App attestation (App Check) missing, invalid or for another app (503 when its keys "
        "cannot be fetched).",
        "after a new attestation token",
    ),
    "malformed-http": (400, "Not valid HTTP/1.1 (local edge).", "no"),
    "request-timeout": (408, "Head or body not sent in time (local edge).", "yes"),
    "uri-too-long": (414, "Request target over the local edge's limit.", "no"),
    "headers-too-large": (431, "Headers over the local edge's limits.", "no"),
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
    "unsupported-dimensions": (
        400,
        "`dimensions` is neither the model's size nor one of its Matryoshka sizes.",
        "no",
    ),
    "unknown-output": (422, "OIP request names an output the model lacks.", "no"),
    "invalid-tensor": (422, "OIP tensor data does not match its shape or type.", "no"),
    "rate-limited": (
        429,
        "A quota bucket (the subject's or the app's requests or work) is empty.",
        "yes, after `Retry-After`",
    ),
    "work-too-large": (413, "More work in one request than a quota bucket holds.", "no: split it"),
    "quota-unavailable": (
        503,
        "The shared quota store cannot answer (fail mode `closed`).",
        "yes, after `Retry-After`",
    ),
    "overloaded": (
        429,
        "The model's queue is full and the caller holds its fair share of it.",
        "yes, after `Retry-After`",
    ),
    "registration-rate-limited": (
        429,
        "Too many device registrations from one address or with one app key.",
        "yes, after `Retry-After`",
    ),
    "internal": (500, "A bug: reported with the request id.", "at most once"),
    "bad-gateway": (
        502,
        "No origin could be reached, or it refused the edge's caller proof.",
        "yes, with backoff",
    ),
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
                    "UploadError",  # edge.core.uploads: (status, slug, detail)
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
    """The origin's OpenAPI document as a page (origin.api.openapi_doc adds the request bodies),
    then the binary tensor extension and the gRPC service."""
    return (
        "## HTTP\n\n"
        + openapi_markdown(
            origin_openapi(),
            schemas_intro="Request bodies with unknown or wrong fields are answered `422` "
            "problem+json naming the field.\n\n",
        )
        + binary_tensors_reference()
        + grpc_api_reference()
    )


def binary_tensors_reference() -> str:
    from origin.api.oip_binary import DATATYPES

    return (
        "## Binary tensor data (OIP REST)\n\n"
        "`POST /v2/models/{model}[/versions/{version}]/infer` also takes and gives tensors as "
        "bytes, as Triton's binary tensor data extension defines (tritonclient's default). The "
        "body is the JSON request followed by the tensor bytes; the `Inference-Header-Content-"
        "Length` header gives the JSON's length, and each binary input says its byte count in "
        "`parameters.binary_data_size`, in input order. Ask for binary outputs with "
        "`parameters.binary_data: true` on a requested output, or `binary_data_output: true` on "
        "the request: the answer is then `application/octet-stream` with the same framing. A "
        "body without a Content-Type is read as JSON.\n\n"
        "Bytes are little-endian and row-major; BOOL is one byte (0 or 1); each BYTES element is "
        "a 4-byte little-endian length followed by its bytes. Datatypes: "
        + ", ".join(f"`{d}`" for d, dtype in DATATYPES.items() if dtype is not None)
        + " (`BF16` is refused). A body whose bytes do not decode (a header length past the end, "
        "sizes that overrun or leave bytes over, a BYTES length past its data, a byte count that "
        "does not fill the shape, an unknown datatype) is a `400`; a decodable tensor the model "
        "does not take is a `422`. Every error body carries `error` (the detail), which OIP "
        "clients read.\n\n"
    )


def _field_type(field: Any) -> str:
    if field.message_type is not None:
        entry = field.message_type.GetOptions().map_entry
        if entry:
            key, value = field.message_type.fields
            return f"map<{_field_type(key)}, {_field_type(value)}>"
        return field.message_type.name
    names = {
        v: k.removeprefix("TYPE_").lower()
        for k, v in vars(type(field)).items()
        if k.startswith("TYPE_") and isinstance(v, int)
    }
    return names[field.type]


def _field_label(field: Any) -> str:
    """`repeated string`, `map<string, InferParameter>`, `bool`, ..."""
    is_map = field.message_type is not None and field.message_type.GetOptions().map_entry
    repeated = getattr(field, "is_repeated", None)
    if repeated is None:
        repeated = field.label == field.LABEL_REPEATED
    return ("repeated " if repeated and not is_map else "") + _field_type(field)


def grpc_api_reference() -> str:
    """`inference.GRPCInferenceService` from the descriptor the origin serves."""
    from origin.grpc import protocol
    from origin.grpc.status import STATUS_CODES

    out = [
        "## Open Inference Protocol over gRPC\n\n"
        f"`{protocol.SERVICE.full_name}`, as KServe's `grpc_predict_v2.proto` and Triton define "
        "it (tritonclient[grpc] and KServe's clients work unchanged), on the port set by "
        "`OUTPOST_ORIGIN_GRPC_PORT` (`--grpc-port`), next to the standard `grpc.health.v1.Health` "
        'service (overall status `""` and the inference service follow readiness). Inputs come as '
        "`raw_input_contents` (same bytes as the binary extension) or typed `contents`; outputs "
        "are answered as `raw_output_contents`. Messages are limited to `max_body_bytes`.\n\n",
        table(
            ["call", "request", "response"],
            [
                (f"`{m.name}`", m.input_type.name, m.output_type.name)
                for m in protocol.SERVICE.methods
            ],
        ),
        "\nErrors use the HTTP problem taxonomy as status codes; the trailing metadata carries "
        "`x-request-id` and `problem-type`, and with a retry delay (overload, not ready) a "
        "`google.rpc.RetryInfo` in `grpc-status-details-bin` plus `retry-after` (seconds).\n\n",
        table(
            ["HTTP status", "gRPC status"],
            [(status, f"`{code.name}`") for status, code in sorted(STATUS_CODES.items())],
        ),
        "\n### Messages\n\n",
    ]

    def message(desc: Any, prefix: str = "") -> None:
        name = prefix + desc.name
        rows = [(_code(f.name), f.number, _code(_field_label(f))) for f in desc.fields]
        out.append(
            f"#### `{name}`\n\n"
            + (table(["field", "number", "type"], rows) if rows else "No fields.\n")
            + "\n"
        )
        for nested in desc.nested_types:
            if not nested.GetOptions().map_entry:
                message(nested, name + ".")

    for desc in protocol.SERVICE.file.message_types_by_name.values():
        message(desc)
    return "".join(out)


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
    """The edge's route table (`edge/core/routes.py`): what each path needs before forwarding."""
    from edge.core import routes

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
        "Generated from the route table in `edge/core/routes.py` at build time. The edge serves "
        "the same table as an OpenAPI 3.1 document at `GET /openapi.json` "
        "(`edge/core/openapi.py`). "
        "Request and response bodies of forwarded paths are the origin's (see the "
        "[origin API](origin.md)); the edge adds authentication, rate limits, caching "
        "and the problem types listed in [Operations](../operations.md#problem-types).\n\n"
        + table(["path", "methods", "token scope", "rate class", "cached", "handling"], rows)
    )


# -- benchmarks ------------------------------------------------------------------------------------
def _load_result(name: str) -> dict[str, Any] | None:
    path = RESULTS_DIR / name
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _when(value: Any) -> str:
    """`2026-11-24T19:37:10Z` as `2026-11-24 19:37 UTC` (other text unchanged)."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\d)T(\d\d:\d\d)(?::\d\d)?Z", str(value or ""))
    return f"{m.group(1)} {m.group(2)} UTC" if m else str(value or "?")


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
        f"Model `{data.get('model')}` version {data.get('version')}, "
        f"measured {_when(data.get('when'))} on {data.get('machine', {}).get('cpus')} CPUs. "
        "Engine limit (in-process, best batch): "
        f"**{engine.get('limit_rps', '?')}** sentences/s; raw batch-1 p50 "
        f"{engine.get('batch1_p50_ms', '?')} ms.\n\n"
    )
    targets = data.get("targets", {})
    tail = ""
    if targets:
        tail = "\nTargets of the run:\n\n" + table(
            ["target", "result"],
            [
                (_label(_ORIGIN_TARGETS, k, "origin_load.json targets"), _verdict(v))
                for k, v in targets.items()
            ],
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


_ORIGIN_TARGETS = {
    "32_clients_served_over_limit>=0.8": "32 clients: at least 0.8x the engine's limit",
    "32_clients_served_over_naive>=2": "32 clients: at least 2x a naive server",
    "1_client_p50_ms": "1 client: p50 latency",
    "1_client_p50_bound_ms": "1 client: p50 bound (engine batch-1 p50 plus HTTP)",
    "1_client_p50_within_bound": "1 client: p50 within the bound",
}


def _tracing(data: dict[str, Any]) -> str:
    """Throughput with tracing off, at the default sampling and at 1.0 (ratios in one run)."""
    rps = data.get("rps_median", {})
    ratios = {
        "default": data.get("ratio_default_vs_off", {}).get("median"),
        "full": data.get("ratio_full_vs_off", {}).get("median"),
    }
    labels = {
        "off": "off",
        "default": f"on, sampling {data.get('default_sample_ratio')}"
        if data.get("sampling_chosen")
        else f"on, default sampling ({data.get('default_sample_ratio')})",
        "full": "on, sampling 1.0",
    }
    batch = data.get("mean_batch_median", {})
    loop = {
        k: v.get("main thread", "-")
        for k, v in data.get("origin_cpu_us_per_request_median", {}).items()
    }
    idle = {k: v.get("idle", "-") for k, v in data.get("cores_median", {}).items()}
    rows = [
        (
            labels[k],
            rps.get(k, "-"),
            "1" if k == "off" else ratios.get(k, "-"),
            batch.get(k, "-"),
            loop.get(k, "-"),
            idle.get(k, "-"),
        )
        for k in ("off", "default", "full")
    ]
    header = [
        "tracing",
        "req/s (median)",
        "ratio to off (median of rounds)",
        "inputs per batch",
        "event loop CPU per request (µs)",
        "idle cores",
    ]
    return (
        f"`{data.get('model')}` at {data.get('clients')} clients, {data.get('rounds')} rounds of "
        f"{data.get('seconds_per_cell')} s per setting in rotating order, measured "
        f"{data.get('date')} on {data.get('machine')}. Target: default sampling >= "
        f"{data.get('target_default_vs_off')} x off.\n\n" + table(header, rows)
    )


_FAIRNESS_PHASES = {
    "idle": "idle: the victim alone",
    "flood": "flood: another subject floods (subjects apart)",
    "one_queue": "the same flood as one anonymous subject (a single queue)",
}
_FAIRNESS_TARGETS = {
    "victim_p99_within_idle_p99_plus_max_batch_ms": "victim p99 under the flood <= idle p99 "
    "+ max_batch_ms",
    "victim_never_refused": "the victim is never refused (429) during the flood",
}


def _fairness(data: dict[str, Any]) -> str:
    """The victim's latency idle, behind a flood, and behind it in one queue; the engine's
    time per token that max_batch_ms is chosen from."""
    batching = data.get("batching", {})
    max_ms = batching.get("max_batch_ms")
    rows = []
    for key, label in _FAIRNESS_PHASES.items():
        phase = data.get("phases", {}).get(key)
        if not phase:
            continue
        victim, batches = phase["victim"], phase.get("batches", {})
        over = next((v for k, v in batches.items() if k.startswith("share_over_")), None)
        rows.append(
            (
                label,
                victim.get("requests"),
                victim.get("p50_ms"),
                victim.get("p99_ms"),
                phase.get("flooder", {}).get("inputs_per_s", "-"),
                batches.get("mean_size", "-"),
                batches.get("mean_ms", "-"),
                f"{over:.1%}" if over is not None else "-",
            )
        )
    flood = data.get("phases", {}).get("flood", {}).get("flooder", {})
    head = (
        f"`{data.get('model')}` version {data.get('version')} on one origin, measured "
        f"{_when(data.get('when'))} on {data.get('machine', {}).get('cpus')} CPUs: "
        f"`max_batch_ms` {max_ms:g}, `max_batch_size` {batching.get('max_batch_size')}, "
        f"`max_batch_tokens` {batching.get('max_batch_tokens')}. The victim sends one short "
        f"input per request, one at a time, {data.get('seconds_per_phase'):g} s per phase; "
        f"the flooder {flood.get('clients')} connections of {flood.get('inputs_per_request')} "
        "long inputs per request, back to back.\n\n"
    )
    ratios = data.get("ratios", {})
    verdict = (
        f"\nBound: idle p99 + `max_batch_ms` = **{data.get('bound_ms')} ms**; victim p99 "
        f"under the flood / bound = **{ratios.get('flood_p99_over_bound')}**; in one queue "
        f"the victim's p99 was {ratios.get('one_queue_p99_over_flood_p99')}x its p99 with "
        "subjects apart. The flooder's inputs/s with subjects apart / in one queue: "
        f"{ratios.get('flooder_inputs_per_s_over_one_queue', '-')} (the victim's batches "
        "take their share).\n\n"
    )
    targets = table(
        ["target", "result"],
        [
            (_label(_FAIRNESS_TARGETS, k, "fairness.json targets"), _verdict(v))
            for k, v in data.get("targets", {}).items()
        ],
    )
    engine = data.get("engine", {})
    by_size: dict[int, dict[str, Any]] = {}
    for kind in ("short", "long"):
        for row in engine.get(kind, []):
            by_size.setdefault(row["batch"], {})[kind] = row
    engine_rows = [
        (
            size,
            cells.get("short", {}).get("batch_ms", "-"),
            cells.get("short", {}).get("us_per_token", "-"),
            cells.get("short", {}).get("inputs_per_s", "-"),
            cells.get("long", {}).get("batch_ms", "-"),
            cells.get("long", {}).get("us_per_token", "-"),
            cells.get("long", {}).get("inputs_per_s", "-"),
        )
        for size, cells in sorted(by_size.items())
    ]
    fit = data.get("engine_within_max_batch_ms", {})
    fits = "; ".join(
        f"{kind} inputs: batches of {v['batch']} fit, at {v['share_of_best_throughput']:.0%} "
        "of the best throughput"
        for kind, v in fit.items()
    )
    return (
        head
        + table(
            [
                "phase",
                "victim requests",
                "victim p50 ms",
                "victim p99 ms",
                "flooder inputs/s",
                "mean batch size",
                "mean batch ms",
                f"batches over {max_ms:g} ms",
            ],
            rows,
        )
        + verdict
        + targets
        + "\nThe engine alone (in-process, default threads), what `max_batch_ms` is chosen from"
        + (f" ({fits})" if fits else "")
        + ":\n\n"
        + table(
            [
                "batch",
                "short: ms",
                "short: µs/token",
                "short: inputs/s",
                "long: ms",
                "long: µs/token",
                "long: inputs/s",
            ],
            engine_rows,
        )
    )


def _flat(data: dict[str, Any], labels: dict[str, str] | None = None) -> str:
    rows = [
        ((labels or {}).get(k, _code(k)), v)
        for k, v in data.items()
        if not isinstance(v, dict | list)
    ]
    return table(["measure", "value"], rows)


def _label(labels: dict[str, Any], key: str, source: str) -> Any:
    """The label of a result key; a key without one fails the build instead of showing raw."""
    try:
        return labels[key]
    except KeyError:
        raise ValueError(
            f"{source}: no label for {key!r}; add one (with its unit) in docs/_hooks/generators.py"
        ) from None


def _verdict(value: Any) -> str:
    if value is True:
        return "met"
    if value is False:
        return "**not met**"
    return f"{value} ms" if isinstance(value, int | float) else str(value)


# edge_bench.json: (section, label with its unit) per key. Every key needs one:
# tests/docs/test_docs_build.py fails on a key without a label, so no raw key reaches the page.
_EDGE_LABELS: dict[str, tuple[str, str]] = {
    "constant_app_rps": ("hits", "minimal uvicorn app returning a constant (requests/s)"),
    "edge_cache_hit_rps": ("hits", "edge answering cache hits (requests/s)"),
    "hit_ratio_vs_constant": ("hits", "hits / constant app (median of rounds)"),
    "hit_ratio_vs_constant_spread": ("hits", "hits / constant app (range over rounds)"),
    "hit_ratio_vs_constant_rounds": ("hits", "hits / constant app (each round)"),
    "constant_app_same_response_rps": (
        "hits",
        "constant app sending the hit's exact answer (requests/s)",
    ),
    "hit_ratio_vs_same_response": ("hits", "hits / that app (median of rounds)"),
    "hit_ratio_vs_same_response_spread": ("hits", "hits / that app (range over rounds)"),
    "hit_ratio_vs_same_response_rounds": ("hits", "hits / that app (each round)"),
    "constant_app_cpu_us_per_request": ("hits", "constant app: server CPU per request (µs)"),
    "edge_hit_cpu_us_per_request": ("hits", "edge hit: server CPU per request (µs)"),
    "same_response_cpu_us_per_request": ("hits", "same-answer app: server CPU per request (µs)"),
    "hit_cpu_ratio_constant_over_edge": ("hits", "CPU per request, constant app / edge hit"),
    "hit_cpu_ratio_rounds": ("hits", "CPU ratio (each round)"),
    "hit_response_headers": ("hits", "headers in a hit's answer"),
    "hit_response_body_bytes": ("hits", "body of a hit's answer (bytes)"),
    "miss_p50_direct_ms": ("misses", "p50 calling the origin directly (ms)"),
    "miss_p50_via_edge_ms": ("misses", "p50 through the edge (ms)"),
    "miss_added_p50_ms": ("misses", "latency the edge adds to a miss, p50 (ms)"),
    "worker_sdk_import_ms": ("worker", "import of the `workers` SDK (ms)"),
    "worker_entry_import_ms": ("worker", "import of `entry.py` (ms)"),
    "worker_first_request_import_ms": ("worker", "the edge's imports on the first request (ms)"),
    "worker_load_ms": (
        "worker",
        "loading Pyodide under Node, the test harness (workerd starts it its own way) (ms)",
    ),
    "load_tool": ("method", "load generator"),
    "latency_tool": ("method", "latency client"),
    "concurrency": ("method", "concurrent connections"),
    "seconds_per_window": ("method", "seconds per measured window"),
    "rounds": ("method", "rounds (servers in alternating order)"),
    "latency_samples": ("method", "latency samples per target"),
    "errors": ("method", "errors"),
}
_EDGE_SECTIONS = {
    "hits": "Cache hits (local edge)",
    "misses": "Cache misses",
    "worker": "Worker cold start, under Node's Pyodide",
    "method": "How it was measured",
}


def _value(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def _edge(data: dict[str, Any]) -> str:
    for key in data:
        _label(_EDGE_LABELS, key, "edge_bench.json")
    out = []
    for section, title in _EDGE_SECTIONS.items():
        rows = [
            (label, _value(data[key]))
            for key, (where, label) in _EDGE_LABELS.items()
            if where == section and key in data
        ]
        if rows:
            out.append(f"**{title}**\n\n" + table(["measure", "value"], rows))
    return "\n".join(out)


_EDGE_FEATURE_SERVERS = {
    "outpost-fp32": "the origin alone",
    "edge-base": "an edge of {base} (before this wave) in front of it",
    "edge-quotas-off": "today's edge, request buckets only",
    "edge-nocache": "today's edge, work quotas in memory",
    "edge-quotas-redis": "today's edge, work quotas in Redis",
}
_EDGE_FEATURE_RATIOS = {
    "quotas_on_vs_off": "work quotas (memory) / request buckets only",
    "quotas_redis_vs_memory": "quotas in Redis / quotas in memory",
    "edge_vs_base_edge": "today's edge / the earlier edge",
    "edge_vs_origin": "today's edge / the origin alone",
    "base_edge_vs_origin": "the earlier edge / the origin alone",
}


def _edge_features(data: dict[str, Any]) -> str:
    """Per server: throughput, p99 and the edge's CPU per request; ratios of paired windows."""
    import statistics

    rows = []
    for name, windows in data.get("windows", {}).items():
        label = _label(_EDGE_FEATURE_SERVERS, name, "edge-features.json servers")
        cpu = [
            w["cpu_seconds"].get(name, 0) / w["requests_ok"] * 1e6
            for w in windows
            if w.get("requests_ok")
        ]
        rows.append(
            (
                label.format(base=_code(data.get("base", "?"))),
                f"{statistics.median(w['req_per_s'] for w in windows):.0f}",
                f"{statistics.median(w['p99_ms'] for w in windows):.0f}",
                "-" if name.startswith("outpost") else f"{statistics.median(cpu):.0f}",
            )
        )
    ratios = []
    for key, found in data.get("throughput_ratios", {}).items():
        pairs = found.get("per_pair", [])
        spread = f"{min(pairs):.2f} to {max(pairs):.2f}" if pairs else "-"
        ratios.append(
            (
                _label(_EDGE_FEATURE_RATIOS, key, "edge-features.json ratios"),
                found.get("median"),
                spread,
            )
        )
    cell = data.get("cell", {})
    return (
        f"{cell.get('concurrency')} clients, {cell.get('input')} inputs, one per request, "
        f"{cell.get('duration_s')} s windows in alternating order, measured {data.get('date')}. "
        "The edge's CPU is its own process's, per answered request.\n\n"
        + table(["server", "req/s (median)", "p99 ms (median)", "edge CPU µs/request"], rows)
        + "\n"
        + table(["throughput ratio", "median of pairs", "range"], ratios)
    )


_HOSTILE_CASES = {
    "idle": "nothing hostile",
    "huge-header": "one 32 MiB header line",
    "many-headers": "100 000 tiny headers",
    "long-target": "a 4 MiB request target",
    "slow-headers": "a head sent one byte per 50 ms (slowloris)",
    "slow-body": "a body sent one byte per 50 ms",
    "oversized-chunked": "an endless chunked body",
}


def _hostile_connections(data: dict[str, Any]) -> str:
    """Other clients' throughput and p99 while one hostile connection of each kind is open."""
    import statistics

    ratios = data.get("p99_vs_idle_median", {})
    rows = []
    for case, windows in data.get("windows", {}).items():
        outcomes: dict[str, int] = {}
        for window in windows:
            for outcome, count in window.get("hostile_outcomes", {}).items():
                outcomes[outcome] = outcomes.get(outcome, 0) + count
        rows.append(
            (
                _label(_HOSTILE_CASES, case, "hostile-connections.json cases"),
                f"{statistics.median(w['requests_per_s'] for w in windows):.0f}",
                f"{statistics.median(w['p99_ms'] for w in windows):.1f}",
                "1" if case == "idle" else ratios.get(case, "-"),
                ", ".join(f"{k}: {v}" for k, v in sorted(outcomes.items())) or "-",
            )
        )
    return (
        f"{data.get('clients')} clients with valid tokens against the local edge in front of a "
        f"constant upstream, {data.get('rounds')} rounds of {data.get('seconds')} s per case in "
        f"rotating order, measured {_when(data.get('when'))} on "
        f"{data.get('machine', {}).get('cpus')} CPUs. Target: {data.get('target')}. The hostile "
        "client runs in its own process on the same two cores, so part of the throughput drop "
        "is its own CPU.\n\n"
        + table(
            [
                "hostile connection",
                "others' req/s (median)",
                "others' p99 ms (median)",
                "p99 / idle (median)",
                "what the hostile client got",
            ],
            rows,
        )
    )


_DEVICE_TRUST_CELLS = {
    "dpop": "a DPoP proof, the whole check (`edge/auth/dpop.py`)",
    "signature": "its ES256 signature check alone (the platform's)",
    "openssl": "a bare ECDSA P-256 verify (`cryptography`): the floor",
    "attestation_cached": "an App Check token checked before",
    "attestation_first": "an App Check token's first check (RS256)",
}


def _device_trust(data: dict[str, Any]) -> str:
    """CPU per request of the device-trust checks (medians of interleaved rounds)."""
    rows = [
        (_label(_DEVICE_TRUST_CELLS, key, "device_trust.json cells"), value)
        for key, value in data.get("cpu_us", {}).items()
    ]
    target = data.get("dpop_target_us")
    verdict = "met" if data.get("dpop_within_target") else "not met"
    return (
        f"Local platform, {data.get('reps')} requests per round, {data.get('rounds')} rounds, "
        f"measured {_when(data.get('when'))} on {data.get('machine', {}).get('cpus')} CPUs "
        f"(`cryptography` {data.get('versions', {}).get('cryptography')}). Target: a proof check "
        f"within {target} µs of CPU: **{verdict}**; the bare signature check is most of it.\n\n"
        + table(["check", "CPU µs per request (median)"], rows)
    )


def _caller_proof(data: dict[str, Any]) -> str:
    """The caller proof's cost per request and, when measured, through a real edge."""
    micro = data.get("per_request", {})
    rows = [
        ("the edge signs a proof (HMAC-SHA256)", micro.get("sign_us")),
        ("the origin checks it", micro.get("verify_us")),
        ("checking an EdDSA token instead (the alternative)", micro.get("eddsa_token_verify_us")),
    ]
    text = f"Measured {_when(data.get('when'))}.\n\n" + table(["step", "µs per request"], rows)
    e2e = data.get("through_the_edge")
    if e2e:
        low, high = e2e.get("ratio_spread", ["?", "?"])
        text += (
            f"\nThrough a real edge to a real origin at {e2e.get('clients')} clients, every "
            f"request a miss, {len(e2e.get('rounds', []))} rounds of {e2e.get('seconds')} s: "
            f"throughput with the proof on / off **{e2e.get('ratio_on_over_off_median')}** "
            f"(median; {low} to {high}).\n"
        )
    return text


def _long_inputs(data: dict[str, Any]) -> str:
    """Long inputs in one run: each cell against the engine's limit and against infinity-emb."""
    import statistics

    windows = data.get("windows", {})

    def served(name: str, cell: str) -> str:
        found = [
            w["sentences_per_s"]
            for w in windows.get(name, [])
            if f"{w['batch']}x{w['concurrency']}" == cell
        ]
        return f"{statistics.median(found):.0f}" if found else "-"

    rows = []
    for cell, m in data.get("medians", {}).items():
        batch, clients = cell.split("x")
        rows.append(
            (
                f"{batch} x {clients}",
                served("outpost-fp32", cell),
                f"{m.get('share')}x",
                served("infinity-optimum", cell),
                f"{m.get('vs_infinity')}x",
                f"{m.get('p99_vs_infinity')}x",
                f"{m.get('share_wide')}x",
            )
        )
    limit = data.get("engine_limit", {})
    target, ahead = data.get("target", {}), data.get("vs_infinity", {})
    return (
        f"Measured {data.get('date')}: the origin with its defaults, the origin with the old "
        "batch token budget (8192) and infinity-emb (optimum, fp32) started once and measured in "
        f"alternating {data.get('duration_s')} s windows; single inputs of 121-129 tokens. The "
        f"engine's limit (in-process, best batch, the mean of before and after): "
        f"**{limit.get('inputs_per_s')} inputs/s** "
        f"({limit.get('before', {}).get('limit_inputs_per_s')} before, "
        f"{limit.get('after', {}).get('limit_inputs_per_s')} after: the machine's drift "
        "during the run).\n\n"
        + table(
            [
                "inputs x clients",
                "Outpost inputs/s",
                "share of the limit",
                "infinity inputs/s",
                "Outpost / infinity",
                "p99 Outpost / infinity",
                "share, old budget",
            ],
            rows,
        )
        + f"\n{target.get('rule')}: **{'met' if target.get('met') else 'not met'}**. "
        f"{ahead.get('rule', 'against infinity')}: "
        f"**{'met' if ahead.get('met') else 'not met'}**.\n"
    )


def long_inputs_reference() -> str:
    data = _load_result("long-inputs.json")
    if not data:
        return _not_measured("long-inputs.json", "./dev bench long-inputs")
    return _long_inputs(data)


# Results rendered on other pages (the peers page, the model guide): named here, not dumped.
_ELSEWHERE = {
    "edge-floor.json": (
        "the edge against the origin alone and a bare proxy",
        "benchmarks-peers.md",
    ),
    "peers-paired.json": ("side-by-side windows against infinity", "benchmarks-peers.md"),
    "peers-shared-threads.json": ("origin threads when it shares its cores", "models.md"),
    "threads-spin.json": ("onnxruntime threads spinning or sleeping", "models.md"),
    "vault_storage.json": ("Vault's storage under device registrations", "vault.md"),
    "long-inputs.json": ("long inputs: the engine's limit, infinity-emb", "benchmarks-peers.md"),
    "peers-epyc.json": ("the peers matrix rerun on an AMD EPYC host", "benchmarks-peers.md"),
    "tracing-unsampled.json": (
        "tracing on with nothing sampled (`--sampling 0.0`)",
        "dev/performance.md",
    ),
    "long-input-accounting.json": (
        "long inputs: where the cores go, Outpost and infinity-emb",
        "benchmarks-peers.md",
    ),
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
        f"Measured {_when(data.get('when'))} on {data.get('machine', {}).get('cpus')} CPUs: "
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
            (
                _label(_SOAK_KINDS, k, "soak.json"),
                v["requests"],
                v["errors"],
                v["p50_ms"],
                v["p99_ms"],
            )
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
    verdict = "; ".join(
        f"{_label(_SOAK_TARGETS, k, 'soak.json')}: {_verdict(v)}" for k, v in targets.items()
    )
    return (
        head
        + kinds
        + "\nPer minute (all traffic):\n\n"
        + minutes
        + "\nMemory:\n\n"
        + rss
        + (f"\nTargets: {verdict}.\n" if verdict else "")
    )


_SOAK_KINDS = {
    "edge-embed-hit": "embeddings through the edge, cache hits",
    "edge-embed-miss": "embeddings through the edge, misses",
    "edge-classify": "classification through the edge",
    "edge-oip": "OIP tensor inference through the edge",
    "origin-embed": "embeddings straight to an origin",
}
_SOAK_TARGETS = {
    "zero_errors": "no errors",
    "rss_growth_under_5pct": "every process's RSS grows under 5 % after warm-up",
}


def soak_reference() -> str:
    data = _load_result("soak.json")
    if not data:
        return _not_measured("soak.json", "./dev bench soak")
    return _soak(data)


def _http_clients(data: dict[str, Any]) -> str:
    rows = [
        (name, v["cpu_us_per_request"], v["wall_us_per_request"])
        for name, v in data.get("clients", {}).items()
    ]
    return (
        f"Measured {_when(data.get('when'))}: one small JSON POST answered with an "
        "embedding-sized body on loopback, sequential, interleaved rounds (medians).\n\n"
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
        f"Measured {_when(data.get('when'))} "
        f"(isal {versions.get('isal')}, zlib {versions.get('zlib')}): "
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


def _transports(data: dict[str, Any]) -> str:
    rows = []
    for model, by_clients in data.get("results", {}).items():
        for clients, cell in sorted(by_clients.items(), key=lambda kv: int(kv[0])):
            ratio = data.get("ratios", {}).get(model, {}).get(clients, {})
            rows.append(
                (
                    f"`{model}`",
                    clients,
                    *(round(cell[t]["rps"]) for t in ("http_json", "http_binary", "grpc")),
                    f"{ratio.get('binary_over_json', '-')}x",
                    f"{ratio.get('grpc_over_json', '-')}x",
                    " / ".join(
                        str(cell[t]["p50_ms"]) for t in ("http_json", "http_binary", "grpc")
                    ),
                )
            )
    inputs = "; ".join(f"`{m}`: {text}" for m, text in data.get("inputs", {}).items())
    return (
        f"Measured {data.get('when')} on {data.get('machine', {}).get('cpus')} CPUs, "
        f"{data.get('rounds')} interleaved rounds of {data.get('seconds')} s per cell (medians). "
        f"Inputs: {inputs}.\n\n"
        + table(
            [
                "model",
                "clients",
                "HTTP JSON req/s",
                "HTTP binary req/s",
                "gRPC req/s",
                "binary / JSON",
                "gRPC / JSON",
                "p50 ms (JSON / binary / gRPC)",
            ],
            rows,
        )
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


def _measured(title: str, name: str, render: Callable[[dict[str, Any]], str], command: str) -> str:
    """One benchmark's section: its rendered result, or how to measure it."""
    data = _load_result(name)
    return f"\n### {title}\n\n" + (render(data) if data else _not_measured(name, command))


# (title, result file, renderer, command) of the sections after the peers', in page order.
_SECTIONS: list[tuple[str, str, Callable[[dict[str, Any]], str], str]] = [
    ("OIP transports (`bench/transports.py`)", "transports.json", _transports, "transports"),
    ("Tracing overhead (`bench/tracing_overhead.py`)", "tracing.json", _tracing, "tracing"),
    ("Fair scheduling (`bench/fairness.py`)", "fairness.json", _fairness, "fairness"),
    (
        "Edge features' cost (`bench/peers/edge_features.py`)",
        "edge-features.json",
        _edge_features,
        "edge-features",
    ),
    (
        "Hostile connections (`bench/hostile_connections.py`)",
        "hostile-connections.json",
        _hostile_connections,
        "hostile-connections",
    ),
    (
        "Device trust (`bench/device_trust_bench.py`)",
        "device_trust.json",
        _device_trust,
        "device-trust",
    ),
    (
        "Caller proof (`bench/caller_proof_bench.py`)",
        "caller_proof.json",
        _caller_proof,
        "caller-proof --e2e",
    ),
]


def benchmarks_reference() -> str:
    out = [
        _measured(
            "Origin throughput and latency (`bench/origin_load.py`)",
            "origin_load.json",
            _origin_load,
            "./dev bench origin",
        ).lstrip("\n"),
        _measured(
            "Edge overhead (`bench/edge_bench.py`)", "edge_bench.json", _edge, "./dev bench edge"
        ),
        "\n### Against peers (`bench/peers/`)\n\n",
    ]
    data = _load_result("peers.json")
    if data:
        out.append(_peers(data))
        out.append(
            f"Measured {data.get('date', '')}; full tables, method and chart on "
            "[Benchmarks against peers](benchmarks-peers.md).\n\n"
        )
    else:
        out.append(
            _not_measured("peers.json", "./dev bench peers")
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
    for title, name, render, command in _SECTIONS:
        out.append(_measured(title, name, render, f"./dev bench {command}"))
    out.append("\n### Soak (`bench/soak.py`)\n\n")
    out.append(soak_reference())
    out.append("\n### Quantization (model build stamps)\n\n")
    out.append(quantization_table())
    known = {
        *("origin_load.json", "edge_bench.json", "peers.json", "soak.json"),
        *("http_clients.json", "gzip.json"),
        *(name for _, name, _, _ in _SECTIONS),
    }
    others = [p.name for p in sorted(RESULTS_DIR.glob("*.json")) if RESULTS_DIR.is_dir()]
    others = [name for name in others if name not in known]
    if others:
        rows = []
        for name in others:
            what, page = _ELSEWHERE.get(name, ("", ""))
            if name.startswith("profile-"):
                what, page = "a py-spy profile", "benchmarks-peers.md"
            rows.append((_code(f"bench/results/{name}"), what, f"[{page}]({page})" if page else ""))
        out.append(
            "\n### Other results\n\nRaw results discussed on other pages:\n\n"
            + table(["file", "what", "read on"], rows)
        )
    return "".join(out)


def bench_commands() -> str:
    """The `outpost bench` commands (outpost/bench.py), for the contributors' page."""
    from outpost.bench import BENCHMARKS

    rows = [
        (
            _code(f"./dev bench {name}"),
            _code(entry.script),
            entry.measures,
            "the load venv (`bench/peers/setup.sh`)" if entry.peers else "the project's",
        )
        for name, entry in BENCHMARKS.items()
    ]
    return "Generated from `outpost/bench.py` when the docs were built.\n\n" + table(
        ["command", "script", "measures", "Python"], rows
    )


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
    "bench-commands": bench_commands,
    "long-inputs": long_inputs_reference,
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
