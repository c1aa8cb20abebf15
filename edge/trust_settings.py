"""Settings of the edge's device-trust checks: DPoP proofs and app attestation.

Two JSON-valued settings, `OUTPOST_EDGE_DPOP` and `OUTPOST_EDGE_ATTESTATION`, parsed here with the
stdlib (they must load inside Cloudflare's Pyodide). Each field documents itself in
`metadata["doc"]`, as `edge.config` does, for the generated settings table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any

from edge.config import ConfigError

MODES = ("off", "monitor", "enforce")
FIREBASE_ISSUER = "https://firebaseappcheck.googleapis.com/"
FIREBASE_JWKS_URL = "https://firebaseappcheck.googleapis.com/v1/jwks"
SIGNATURE_ALGORITHMS = frozenset({"ES256", "EdDSA", "RS256"})


def _doc(text: str, **kw: Any) -> Any:
    return field(metadata={"doc": text}, **kw)


@dataclass(frozen=True)
class DpopSettings:
    """Proof checking for device-bound tokens (`OUTPOST_EDGE_DPOP`)."""

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
    """An issuer of app attestation tokens, verified against its JWKS."""

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

    @classmethod
    def firebase(cls, project_number: str, app_ids: tuple[str, ...]) -> AttestationIssuer:
        """Firebase App Check for one project: RS256 tokens whose `iss` names the project number
        and whose `aud` contains `projects/<number>`, keys from Google's JWKS."""
        if not project_number.isdigit():
            raise ConfigError(f"firebase_project_number must be digits, got {project_number!r}")
        return cls(
            issuer=FIREBASE_ISSUER + project_number,
            jwks_url=FIREBASE_JWKS_URL,
            audiences=(f"projects/{project_number}",),
            app_ids=app_ids,
        )


@dataclass(frozen=True)
class AttestationSettings:
    """App attestation per route class (`OUTPOST_EDGE_ATTESTATION`)."""

    modes: Mapping[str, str] = _doc(
        "Route class -> `off`, `monitor` (verify, count, allow) or `enforce` (refuse what fails);"
        " the `default` key covers the classes not named. Absent: `off`.",
        default_factory=dict,
    )
    issuers: tuple[AttestationIssuer, ...] = _doc(
        'Trusted issuers: `{"firebase_project_number": "123", "app_ids": [...]}` for App Check, '
        'or `{"issuer", "jwks_url", "audiences", "app_ids"}` for any other.',
        default=(),
    )
    header: str = _doc("Request header carrying the token.", default="x-firebase-appcheck")
    token_cache_entries: int = _doc("Verified attestation tokens remembered.", default=10_000)

    def mode_for(self, route_class: str) -> str:
        return self.modes.get(route_class) or self.modes.get("default") or "off"


def _loads(raw: Any, name: str) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{name}: not valid JSON ({exc.msg})") from None


def _strings(value: Any, name: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{name}: expected a list of strings")
    return tuple(value)


def _convert(annotation: str, value: Any, name: str) -> Any:
    try:
        if annotation == "float":
            return float(value)
        if annotation == "int":
            return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: cannot read {value!r} as {annotation}") from None
    if annotation == "str":
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a string")
        return value
    if annotation == "tuple[str, ...]":
        return _strings(value, name)
    raise ConfigError(f"{name}: unsupported value")  # pragma: no cover


def _build(cls: type, raw: Mapping[str, Any], name: str, **done: Any) -> Any:
    """`cls` from a mapping of its scalar and string-list fields (`done`: fields built already)."""
    known = {f.name: f for f in fields(cls)}
    unknown = set(raw) - set(known)
    if unknown:
        raise ConfigError(f"{name}: unknown keys {sorted(unknown)}")
    kwargs = dict(done)
    for key, value in raw.items():
        if key not in done:
            kwargs[key] = _convert(str(known[key].type), value, f"{name}.{key}")
    missing = [
        f.name
        for f in known.values()
        if f.name not in kwargs and f.default is MISSING and f.default_factory is MISSING
    ]
    if missing:
        raise ConfigError(f"{name}: missing {missing}")
    return cls(**kwargs)


def _check_algorithms(algorithms: tuple[str, ...], name: str) -> None:
    bad = set(algorithms) - SIGNATURE_ALGORITHMS
    if bad or not algorithms:
        raise ConfigError(f"{name}: unsupported algorithms {sorted(bad) or '(none)'}")


def parse_dpop(raw: Any) -> DpopSettings:
    """`OUTPOST_EDGE_DPOP` (a JSON object, or a mapping from TOML) as settings."""
    data = _loads(raw, "dpop")
    if not isinstance(data, Mapping):
        raise ConfigError("dpop: expected a JSON object")
    settings: DpopSettings = _build(DpopSettings, data, "dpop")
    _check_algorithms(settings.algorithms, "dpop.algorithms")
    if settings.max_age_seconds <= 0 or settings.clock_skew_seconds < 0:
        raise ConfigError("dpop: max_age_seconds must be > 0 and clock_skew_seconds >= 0")
    if settings.public_url and not settings.public_url.startswith(("http://", "https://")):
        raise ConfigError(f"dpop.public_url must be http(s): {settings.public_url!r}")
    return settings


def _issuer(raw: Any, name: str) -> AttestationIssuer:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{name}: expected an object")
    if "firebase_project_number" in raw:
        extra = set(raw) - {"firebase_project_number", "app_ids"}
        if extra:
            raise ConfigError(f"{name}: unknown keys {sorted(extra)} beside a Firebase project")
        issuer = AttestationIssuer.firebase(
            str(raw["firebase_project_number"]),
            _strings(raw.get("app_ids", ()), f"{name}.app_ids"),
        )
    else:
        issuer = _build(AttestationIssuer, raw, name)
    if not issuer.app_ids:
        raise ConfigError(f"{name}: app_ids must name at least one app")
    if not issuer.audiences:
        raise ConfigError(f"{name}: audiences must not be empty")
    _check_algorithms(issuer.algorithms, f"{name}.algorithms")
    return issuer


def parse_attestation(raw: Any) -> AttestationSettings:
    """`OUTPOST_EDGE_ATTESTATION` (a JSON object, or a mapping from TOML) as settings."""
    data = _loads(raw, "attestation")
    if not isinstance(data, Mapping):
        raise ConfigError("attestation: expected a JSON object")
    modes = data.get("modes", {})
    if not isinstance(modes, Mapping) or any(m not in MODES for m in modes.values()):
        raise ConfigError(f"attestation.modes: route class -> one of {', '.join(MODES)}")
    issuers = data.get("issuers", [])
    if not isinstance(issuers, list | tuple):
        raise ConfigError("attestation.issuers: expected a list")
    built = tuple(_issuer(i, f"attestation.issuers[{n}]") for n, i in enumerate(issuers))
    settings: AttestationSettings = _build(
        AttestationSettings,
        data,
        "attestation",
        modes={str(k): str(v) for k, v in modes.items()},
        issuers=built,
    )
    if any(m != "off" for m in settings.modes.values()) and not built:
        raise ConfigError("attestation: a mode other than off needs at least one issuer")
    return replace(settings, header=settings.header.lower())
