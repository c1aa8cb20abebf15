"""Edge settings: stdlib dataclasses, and the one loader every entry point uses.

Pydantic is not available inside Cloudflare's Python Workers, so the edge's settings are
dataclasses whose fields carry their documentation in ``metadata["doc"]`` (see
:func:`field_docs`, used to generate the settings reference). :func:`load_config` reads them
from layers of plain mappings, later layers winning: the local server passes its TOML file, the
process environment and its command-line flags; the Worker passes its vars and secrets. Keys are
env-style (``OUTPOST_EDGE_ORIGINS``, JSON for structured values) or bare field names
(``origins``, as in the TOML file).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any

from edge.upstream.proof import KeyFormatError, parse_key

ENV_PREFIX = "OUTPOST_EDGE_"
DEFAULT_ALGORITHMS = ("EdDSA", "ES256", "RS256")
# Only asymmetric algorithms: `none` and every HMAC alg are never accepted (algorithm confusion).
SUPPORTED_ALGORITHMS = frozenset(DEFAULT_ALGORITHMS)


class ConfigError(ValueError):
    """A setting is missing or malformed."""


def _doc(text: str, **kw: Any) -> Any:
    return field(metadata={"doc": text}, **kw)


@dataclass(frozen=True)
class OriginSpec:
    """One origin replica behind the edge."""

    url: str = _doc("Base URL of the origin, e.g. `http://127.0.0.1:8101`.")
    weight: float = _doc("Relative share of traffic (> 0).", default=1.0)
    pool: str = _doc("Pool name: `primary` or a canary pool name.", default="primary")


@dataclass(frozen=True)
class IssuerSpec:
    """A trusted token issuer (the origin's own, or any OIDC provider)."""

    issuer: str = _doc("Exact `iss` claim value.")
    jwks_url: str | None = _doc(
        "JWKS URL; when empty it is found via `<issuer>/.well-known/openid-configuration`.",
        default=None,
    )
    audience: str = _doc("Required `aud` claim.", default="outpost")
    algorithms: tuple[str, ...] = _doc(
        "Accepted `alg` values (subset of EdDSA, ES256, RS256).", default=DEFAULT_ALGORITHMS
    )
    jwks_ttl_seconds: float = _doc("How long a fetched JWKS is trusted.", default=300.0)
    refresh_min_interval_seconds: float = _doc(
        "Minimum time between JWKS fetches triggered by an unknown `kid`.", default=30.0
    )


@dataclass(frozen=True)
class RatePolicy:
    """Token bucket: `rate` requests per second refilled, up to `burst` at once."""

    rate: float = _doc("Sustained requests per second per subject.", default=20.0)
    burst: int = _doc("Bucket size (requests allowed at once).", default=40)


@dataclass(frozen=True)
class CanaryRule:
    """Send part of one model's traffic to a canary pool."""

    percent: float = _doc("Share of subjects (0-100) routed to the canary pool.", default=0.0)
    pool: str = _doc("Pool the canary share goes to.", default="canary")


MODES = ("off", "monitor", "enforce")
FIREBASE_ISSUER = "https://firebaseappcheck.googleapis.com/"
FIREBASE_JWKS_URL = "https://firebaseappcheck.googleapis.com/v1/jwks"


@dataclass(frozen=True)
class DpopSettings:
    """Proof checking for device-bound tokens (RFC 9449)."""

    algorithms: tuple[str, ...] = _doc(
        "Proof algorithms accepted: `ES256` (the P-256 keys of the Secure Enclave and Android "
        "Keystore) and `EdDSA`.",
        default=("ES256", "EdDSA"),
    )
    max_age_seconds: float = _doc("How old a proof (its `iat`) may be.", default=60.0)
    clock_skew_seconds: float = _doc(
        "How far in the future a proof's `iat` may be (device clocks drift).", default=10.0
    )
    replay_cache_entries: int = _doc(
        "Proof ids remembered per process (or isolate) to refuse replays; about 250 bytes each.",
        default=100_000,
    )
    public_url: str = _doc(
        "Scheme and host the apps call, e.g. `https://api.example.com`: the base every proof's "
        "`htu` must name. Empty: each request's own scheme and Host header.",
        default="",
    )
    require_for: tuple[str, ...] = _doc(
        "Route classes where unbound (Bearer) tokens are refused too, so every caller must hold "
        "a device key. Empty: only device tokens (`cnf.jkt`) need proofs.",
        default=(),
    )


@dataclass(frozen=True)
class AttestationIssuer:
    """An issuer of app attestation tokens, verified against its JWKS. For Firebase App Check,
    `{"firebase_project_number": "123", "app_ids": [...]}` fills in the rest."""

    issuer: str = _doc("Exact `iss` claim value.")
    jwks_url: str = _doc("URL of the issuer's JSON Web Key Set.")
    audiences: tuple[str, ...] = _doc("A token's `aud` must contain one of these.")
    app_ids: tuple[str, ...] = _doc("Accepted `sub` values: the attested apps' ids.")
    algorithms: tuple[str, ...] = _doc("Accepted `alg` values.", default=("RS256",))
    typ: str = _doc("Required `typ` header (`JWT` for App Check); empty: unchecked.", default="JWT")
    jwks_ttl_seconds: float = _doc("How long a fetched key set is trusted.", default=3600.0)
    refresh_min_interval_seconds: float = _doc(
        "Minimum time between key set fetches caused by an unknown `kid`.", default=30.0
    )


@dataclass(frozen=True)
class AttestationSettings:
    """App attestation (Firebase App Check, or any JWKS-verified issuer) per route class."""

    modes: Mapping[str, str] = _doc(
        "Route class -> `off`, `monitor` (verify, count, allow) or `enforce` (refuse what fails);"
        " the `default` key covers the classes not named. Absent: `off`.",
        default_factory=dict,
    )
    issuers: tuple[AttestationIssuer, ...] = _doc("Trusted issuers.", default=())
    header: str = _doc("Request header carrying the token.", default="x-firebase-appcheck")
    token_cache_entries: int = _doc("Verified attestation tokens remembered.", default=10_000)

    def mode_for(self, route_class: str) -> str:
        return self.modes.get(route_class) or self.modes.get("default") or "off"


@dataclass(frozen=True)
class EdgeConfig:
    """Every setting of the edge. Env var: `OUTPOST_EDGE_<FIELD NAME IN CAPS>`."""

    origins: tuple[OriginSpec, ...] = _doc(
        'JSON list of origins: `[{"url": "http://127.0.0.1:8101", "weight": 1}]`.',
        default=(),
    )
    issuers: tuple[IssuerSpec, ...] = _doc(
        'JSON list of issuers: `[{"issuer": "https://id.example", "audience": "outpost"}]`.',
        default=(),
    )
    rate_limits: Mapping[str, RatePolicy] = _doc(
        'JSON object route-class -> `{"rate": r, "burst": b}`; classes: `inference`, `images`, '
        "`models`, `identity`, `default` (a class without its own policy uses `default`).",
        default_factory=dict,
    )
    work_limits: Mapping[str, RatePolicy] = _doc(
        'JSON object route-class -> `{"rate": r, "burst": b}` in work units per '
        "subject: estimated tokens (a token per 4 bytes of text, at most 512 per input) on "
        "the text routes, images on the image routes. The burst is the most one request may "
        "ask for; a request asking for more is answered 413.",
        default_factory=lambda: {
            "inference": RatePolicy(rate=1024.0, burst=65536),
            "images": RatePolicy(rate=4.0, burst=32),
        },
    )
    model_work_limits: Mapping[str, RatePolicy] = _doc(
        "JSON object model -> work policy, in place of its route class's `work_limits`.",
        default_factory=dict,
    )
    app_rate_limits: Mapping[str, RatePolicy] = _doc(
        "JSON object route-class -> request policy shared by all subjects of one app (the "
        "token's `client_id`). None by default.",
        default_factory=dict,
    )
    app_work_limits: Mapping[str, RatePolicy] = _doc(
        "JSON object route-class -> work policy shared by all subjects of one app.",
        default_factory=dict,
    )
    quota_store: str = _doc(
        "Where quota buckets live: `memory` (this process), `redis` (shared by self-hosted "
        "replicas, `quota_redis_url`) or `durable-object` (Workers, the `QUOTAS` binding).",
        default="memory",
    )
    quota_redis_url: str = _doc(
        "Redis URL for `quota_store: redis`, e.g. `redis://127.0.0.1:6379/0`.", default=""
    )
    quota_fail_mode: str = _doc(
        "When the shared store cannot answer in `quota_timeout_seconds`: `local` (this "
        "process's own buckets, per replica), `open` (allow) or `closed` (503).",
        default="local",
    )
    quota_timeout_seconds: float = _doc(
        "How long a request waits for the shared quota store.", default=0.05
    )
    quota_shards: int = _doc(
        "Durable Objects the buckets are spread over (by subject); more shards, more throughput.",
        default=64,
    )
    canary: Mapping[str, CanaryRule] = _doc(
        'JSON object model -> `{"percent": 10, "pool": "canary"}`; header '
        "`X-Outpost-Canary: 1` always picks the canary.",
        default_factory=dict,
    )
    cors_origins: tuple[str, ...] = _doc(
        "Allowed CORS origins (comma-separated or JSON list; `*` for any).", default=()
    )
    trusted_proxies: tuple[str, ...] = _doc(
        "Peers (IPs/CIDRs) whose `X-Forwarded-For` is trusted for the client IP.", default=()
    )
    leeway_seconds: float = _doc("Clock skew allowed on `exp`/`nbf`/`iat`.", default=30.0)
    cache_max_bytes: int = _doc(
        "Memory bound of the edge's in-process response cache (bytes of bodies, counting each "
        "entry's gzip copy and bookkeeping); least recently used entries go first.",
        default=64 << 20,
    )
    cache_max_ttl_seconds: float = _doc("Upper bound on a cached entry's freshness.", default=3600)
    stale_if_error_seconds: float = _doc(
        "How long past expiry an entry may be served (X-Cache: STALE) when origins fail.",
        default=300.0,
    )
    cache_max_body_bytes: int = _doc("Responses larger than this are not cached.", default=1 << 20)
    max_request_bytes: int = _doc(
        "Largest accepted request body (413 above; the local server refuses a larger declared "
        "or counted body before reading it).",
        default=1 << 20,
    )
    admin_port: int = _doc(
        "Local server: port of the internal listener, serving `/metrics` and `/healthz` with "
        "origin details (0: none). Keep it off the public network.",
        default=0,
    )
    admin_host: str = _doc(
        "Local server: address the internal listener binds.", default="127.0.0.1"
    )
    max_image_request_bytes: int = _doc(
        "Largest accepted body on the image routes and on Open Inference Protocol infer (the "
        "origin refuses more than `max_request_bytes` for models that take no images).",
        default=16 << 20,
    )
    max_request_line_bytes: int = _doc(
        "Local server: longest request target (414 above). Cloudflare applies its own limits "
        "in front of the Worker.",
        default=8192,
    )
    max_header_bytes: int = _doc(
        "Local server: largest total of header lines (431 above).", default=16384
    )
    max_header_count: int = _doc("Local server: most header fields (431 above).", default=100)
    header_timeout_seconds: float = _doc(
        "Local server: time a request's head may take from its first byte, and a new "
        "connection to start a request (408, then the connection is closed).",
        default=10.0,
    )
    body_timeout_seconds: float = _doc(
        "Local server: time a request's body may take once its head arrived (408). At the "
        "default, a 1 MiB upload needs about 17 KB/s.",
        default=60.0,
    )
    gzip_min_bytes: int = _doc(
        "Responses at least this large are gzipped if accepted.", default=1024
    )
    gzip_level: int = _doc(
        "gzip level, 1 (fastest) to 9 (smallest), as zlib's (the Worker compresses with zlib; "
        "the local edge with ISA-L, whose levels 1-3 stand for 1-3, 4-6 and 7-9). 1 is nginx's "
        "default too: see bench/results/gzip.json for the CPU and size at 1, 6 and 9.",
        default=1,
    )
    connect_timeout_seconds: float = _doc("Per-attempt connect timeout to an origin.", default=2.0)
    request_timeout_seconds: float = _doc("Per-attempt total timeout to an origin.", default=30.0)
    read_timeout_floor_seconds: float = _doc(
        "An attempt fails when the origin sends nothing for this long plus "
        "`read_timeout_factor` x the model's recent p99 latency per input x the request's "
        "inputs (never past the request timeout).",
        default=1.0,
    )
    read_timeout_factor: float = _doc("See `read_timeout_floor_seconds`.", default=4.0)
    hedge_factor: float = _doc(
        "An idempotent request not answered after this x the model's recent p99 latency per "
        "input x its inputs (at least `hedge_floor_seconds`) is also sent to another origin; "
        "the first answer wins. Hedges come out of the retry budget.",
        default=2.0,
    )
    hedge_floor_seconds: float = _doc("Shortest hedge delay.", default=0.05)
    retry_budget_ratio: float = _doc(
        "Retries allowed as a share of requests over the last 10 s.", default=0.2
    )
    retry_min_per_window: int = _doc("Retries always allowed per 10 s window.", default=10)
    max_attempts: int = _doc("Attempts per idempotent request (first try + retries).", default=3)
    health_interval_seconds: float = _doc("Active health check period.", default=5.0)
    eject_after_failures: int = _doc("Consecutive 5xx answers that eject an origin.", default=3)
    eject_base_seconds: float = _doc("First ejection length; doubles per repeat.", default=2.0)
    eject_max_seconds: float = _doc("Longest ejection.", default=60.0)
    token_cache_entries: int = _doc("Verified-token cache size.", default=10_000)
    trace_sample_ratio: float = _doc(
        "Share of requests whose edge span is recorded (0-1). The edge always passes W3C "
        "trace context on to the origin; this decides which spans it writes (a JSON log line "
        "in Workers, OTLP locally when `trace_export_endpoint` is set).",
        default=0.1,
    )
    trace_trust_incoming_sampled: bool = _doc(
        "Follow the caller's `traceparent` sampled flag instead of `trace_sample_ratio` (only "
        "behind a proxy of yours: a client could otherwise have every request recorded).",
        default=False,
    )
    trace_export_endpoint: str = _doc(
        "Local server: OTLP/HTTP traces URL for the edge's spans, e.g. "
        "`http://127.0.0.1:4318/v1/traces`. Empty: none exported.",
        default="",
    )
    dpop: DpopSettings = _doc(  # noqa: RUF009 - `_doc` is `field` with a doc
        "JSON object: proof checking for device-bound tokens (see DpopSettings below).",
        default_factory=DpopSettings,
    )
    attestation: AttestationSettings = _doc(  # noqa: RUF009 - `_doc` is `field` with a doc
        'JSON object: app attestation per route class, e.g. `{"modes": {"identity": '
        '"enforce"}, "issuers": [{"firebase_project_number": "123", "app_ids": ["1:123:'
        'android:abc"]}]}` (see AttestationSettings below).',
        default_factory=AttestationSettings,
    )
    caller_key: str = _doc(
        "SECRET. `<key id>:<base64 of 32 bytes>`: the key the edge signs each forwarded "
        "request's caller proof with (`X-Outpost-Caller`, docs/resilience.md), from Vault's "
        "`secret/outpost/origin/caller`. Set it as a secret (`wrangler secret put`, an env "
        "var), never in a file. Empty: no proof is sent (origins that require one refuse).",
        default="",
        repr=False,
    )

    def body_limit(self, route: str) -> int:
        """The largest body route `route` accepts."""
        if route in ("v1-images", "v2-infer"):
            return max(self.max_image_request_bytes, self.max_request_bytes)
        return self.max_request_bytes

    @property
    def largest_body(self) -> int:
        """The largest body any route accepts (what the local server reads at most)."""
        return max(self.max_image_request_bytes, self.max_request_bytes)

    def policy_for(self, route_class: str) -> RatePolicy:
        return self.rate_limits.get(route_class) or self.rate_limits.get("default") or RatePolicy()


def field_docs(cls: type = EdgeConfig) -> Iterator[tuple[str, str, str]]:
    """(env var, default, doc) for every field: the source of the docs' settings table."""
    for f in fields(cls):
        if f.default is not MISSING:
            default = repr(f.default)
        elif f.default_factory is not MISSING:
            default = repr(f.default_factory())
        else:
            default = "required"
        yield ENV_PREFIX + f.name.upper(), default, f.metadata.get("doc", "")


def _json(value: Any, name: str) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{name}: not valid JSON ({exc.msg})") from None


def _build(cls: type, raw: Any, name: str) -> Any:
    if isinstance(raw, cls):
        return raw
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{name}: expected an object, got {type(raw).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"{name}: unknown keys {sorted(unknown)}")
    kwargs = {}
    for f in fields(cls):
        if f.name in raw:
            kwargs[f.name] = _coerce(f.type, raw[f.name], f"{name}.{f.name}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def _list(value: Any, name: str) -> list[Any]:
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("["):
            value = _json(stripped, name)
        else:
            return [v.strip() for v in stripped.split(",") if v.strip()]
    if not isinstance(value, list | tuple):
        raise ConfigError(f"{name}: expected a list")
    return list(value)


_DECIMAL = re.compile(r"-?(?:[0-9]{1,15}(?:\.[0-9]{0,15})?|\.[0-9]{1,15})(?:[eE][-+]?[0-9]{1,3})?")
_INTEGER = re.compile(r"-?[0-9]{1,18}")


def _number(value: Any, name: str, integer: bool) -> float | int:
    """A number from a TOML/JSON value or an env string: ASCII digits only, finite, bounded
    (no `nan`, `inf`, `1_000` or other scripts' digits, which Python's own parsers take). The
    value itself is never echoed in the error: a misplaced secret must not reach a log."""
    if isinstance(value, str):
        text = value.strip()
        if (_INTEGER if integer else _DECIMAL).fullmatch(text):
            number = int(text) if integer else float(text)
            if math.isfinite(number):
                return number
    elif isinstance(value, int) and not isinstance(value, bool):
        if abs(value) < 10**18:
            return value if integer else float(value)
    elif isinstance(value, float) and not integer and math.isfinite(value):
        return value
    kind = "a whole number" if integer else "a number"
    raise ConfigError(f"{name}: expected {kind}")


def _coerce(type_name: str, value: Any, name: str) -> Any:
    """Convert a raw value (str from env, or JSON/TOML value) to the field's annotated type."""
    if type_name == "str":
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a string")
        return value
    if type_name == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
            return value.strip().lower() in ("true", "1")
        raise ConfigError(f"{name}: expected true or false")
    if type_name == "float":
        return _number(value, name, integer=False)
    if type_name == "int":
        return _number(value, name, integer=True)
    if type_name == "str | None":
        if value in (None, ""):
            return None
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a string")
        return value
    if type_name == "tuple[str, ...]":
        items = _list(value, name)
        if not all(isinstance(v, str) for v in items):
            raise ConfigError(f"{name}: expected a list of strings")
        return tuple(items)
    if type_name == "tuple[OriginSpec, ...]":
        items = _list(_json(value, name), name)
        return tuple(
            _build(OriginSpec, {"url": i} if isinstance(i, str) else i, f"{name}[{n}]")
            for n, i in enumerate(items)
        )
    if type_name == "tuple[IssuerSpec, ...]":
        items = _list(_json(value, name), name)
        return tuple(_build(IssuerSpec, i, f"{name}[{n}]") for n, i in enumerate(items))
    if type_name == "DpopSettings":
        return _build(DpopSettings, _json(value, name) if value != "" else {}, name)
    if type_name == "AttestationSettings":
        return _attestation(_json(value, name) if value != "" else {}, name)
    if type_name == "tuple[AttestationIssuer, ...]":
        items = _list(_json(value, name), name)
        return tuple(_issuer(i, f"{name}[{n}]") for n, i in enumerate(items))
    if type_name == "Mapping[str, str]":
        data = _json(value, name)
        if not isinstance(data, Mapping) or not all(isinstance(v, str) for v in data.values()):
            raise ConfigError(f"{name}: expected an object of strings")
        return {str(k): v for k, v in data.items()}
    if type_name in ("Mapping[str, RatePolicy]", "Mapping[str, CanaryRule]"):
        cls = RatePolicy if "RatePolicy" in type_name else CanaryRule
        data = _json(value, name)
        if not isinstance(data, Mapping):
            raise ConfigError(f"{name}: expected an object")
        return {str(k): _build(cls, v, f"{name}.{k}") for k, v in data.items()}
    raise ConfigError(f"{name}: unsupported type {type_name}")  # pragma: no cover


def _issuer(raw: Any, name: str) -> AttestationIssuer:
    if isinstance(raw, Mapping) and "firebase_project_number" in raw:
        extra = set(raw) - {"firebase_project_number", "app_ids"}
        if extra:
            raise ConfigError(f"{name}: unknown keys {sorted(extra)} beside a Firebase project")
        number = raw["firebase_project_number"]
        if not isinstance(number, str | int) or not str(number).isdigit():
            raise ConfigError(f"{name}.firebase_project_number must be digits")
        raw = {
            "issuer": FIREBASE_ISSUER + str(number),
            "jwks_url": FIREBASE_JWKS_URL,
            "audiences": [f"projects/{number}"],
            "app_ids": raw.get("app_ids", []),
        }
    issuer: AttestationIssuer = _build(AttestationIssuer, raw, name)
    if not issuer.app_ids:
        raise ConfigError(f"{name}: app_ids must name at least one app")
    if not issuer.audiences:
        raise ConfigError(f"{name}: audiences must not be empty")
    _check_algorithms(issuer.algorithms, f"{name}.algorithms")
    if not issuer.jwks_url.startswith(("https://", "http://")):
        raise ConfigError(f"{name}.jwks_url must be http(s)")
    return issuer


def _attestation(raw: Any, name: str) -> AttestationSettings:
    settings: AttestationSettings = _build(AttestationSettings, raw, name)
    if any(m not in MODES for m in settings.modes.values()):
        raise ConfigError(f"{name}.modes: route class -> one of {', '.join(MODES)}")
    if any(m != "off" for m in settings.modes.values()) and not settings.issuers:
        raise ConfigError(f"{name}: a mode other than off needs at least one issuer")
    return replace(settings, header=settings.header.lower())


def _check_algorithms(algorithms: tuple[str, ...], name: str) -> None:
    bad = set(algorithms) - SUPPORTED_ALGORITHMS
    if bad or not algorithms:
        raise ConfigError(f"{name}: unsupported algorithms {sorted(bad) or '(none)'}")


def parse_dpop(raw: Any) -> DpopSettings:
    """`OUTPOST_EDGE_DPOP`'s value (a JSON object, or a mapping from TOML) as settings."""
    return load_config({"dpop": raw}).dpop


def parse_attestation(raw: Any) -> AttestationSettings:
    """`OUTPOST_EDGE_ATTESTATION`'s value as settings."""
    return load_config({"attestation": raw}).attestation


def setting_names() -> list[str]:
    """Every setting's env-style name (`OUTPOST_EDGE_ORIGINS`, ...)."""
    return [ENV_PREFIX + f.name.upper() for f in fields(EdgeConfig)]


def env_layer(environ: Mapping[str, str]) -> dict[str, str]:
    """The edge's settings in a process environment (its `OUTPOST_EDGE_*` variables)."""
    return {k: v for k, v in environ.items() if k.startswith(ENV_PREFIX)}


def load_config(*layers: Mapping[str, Any]) -> EdgeConfig:
    """The edge's settings from `layers` (defaults < first < ... < last). Every key must name a
    setting, env-style or bare: a typo is an error, never a silent default. None values are
    skipped (a flag not given)."""
    names = {f.name for f in fields(EdgeConfig)}
    raw: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            text = str(key)
            name = text[len(ENV_PREFIX) :].lower() if text.startswith(ENV_PREFIX) else text
            if value is None:
                continue
            if name not in names:
                raise ConfigError(f"unknown setting {key!r}")
            raw[name] = value
    config = _build(EdgeConfig, raw, "edge")
    for origin in config.origins:
        if not origin.url.startswith(("http://", "https://")):
            raise ConfigError(f"origin url must be http(s): {origin.url!r}")
        if origin.weight <= 0:
            raise ConfigError(f"origin weight must be > 0: {origin.url}")
    if not 1 <= config.gzip_level <= 9:
        raise ConfigError(f"gzip_level must be 1-9, got {config.gzip_level}")
    for issuer in config.issuers:
        bad = set(issuer.algorithms) - SUPPORTED_ALGORITHMS
        if bad:
            raise ConfigError(f"issuer {issuer.issuer}: unsupported algorithms {sorted(bad)}")
    if config.quota_store not in ("memory", "redis", "durable-object"):
        raise ConfigError("quota_store must be memory, redis or durable-object")
    if config.quota_fail_mode not in ("local", "open", "closed"):
        raise ConfigError("quota_fail_mode must be local, open or closed")
    if config.quota_store == "redis" and not config.quota_redis_url.startswith(
        ("redis://", "rediss://", "unix://")
    ):
        raise ConfigError("quota_store redis needs quota_redis_url (redis://...)")
    if not 1 <= config.quota_shards <= 4096:
        raise ConfigError("quota_shards must be 1-4096")
    policies = [
        *config.rate_limits.values(),
        *config.work_limits.values(),
        *config.model_work_limits.values(),
        *config.app_rate_limits.values(),
        *config.app_work_limits.values(),
    ]
    if any(p.rate < 0 or p.burst < 1 for p in policies):
        raise ConfigError("rate limits need rate >= 0 and burst >= 1")
    if not 0 <= config.trace_sample_ratio <= 1:
        raise ConfigError("trace_sample_ratio must be between 0 and 1")
    if config.trace_export_endpoint and not config.trace_export_endpoint.startswith(
        ("http://", "https://")
    ):
        raise ConfigError("trace_export_endpoint must be http(s)")
    dpop = config.dpop
    _check_algorithms(dpop.algorithms, "dpop.algorithms")
    if not set(dpop.algorithms) <= {"ES256", "EdDSA"}:
        raise ConfigError("dpop.algorithms: ES256 and EdDSA only (device keys)")
    if dpop.max_age_seconds <= 0 or dpop.clock_skew_seconds < 0:
        raise ConfigError("dpop: max_age_seconds must be > 0 and clock_skew_seconds >= 0")
    if dpop.public_url and not dpop.public_url.startswith(("http://", "https://")):
        raise ConfigError("dpop.public_url must be http(s)")
    if config.caller_key:
        try:
            parse_key(config.caller_key)
        except KeyFormatError as exc:  # the message never holds the value: it is a secret
            raise ConfigError(f"caller_key: {exc}") from None
    return config


def read_toml(path: str) -> dict[str, Any]:
    """A TOML settings file as a layer for `load_config` (field names as keys)."""
    import tomllib

    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
