"""`outpost config show`: each component's effective settings, with secrets redacted."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any
from urllib.parse import urlsplit

REDACTED = "***"
_SECRET_NAME = re.compile(r"secret|token|password|key|credential|pepper", re.IGNORECASE)
# Settings whose names look secret but only point at where a secret lives.
_NOT_SECRET = re.compile(r"_file$|_mount$|_prefix$|^transit_key$|_ttl|_entries$", re.IGNORECASE)


def redact(value: Any, name: str = "") -> Any:
    """Replace values of secret-looking fields (recursively); keep file paths and names."""
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, name) for v in value]
    if name and _SECRET_NAME.search(name) and not _NOT_SECRET.search(name) and value:
        return REDACTED
    return value


def _edge(env: dict[str, str] | None = None) -> dict[str, Any]:
    from edge.config import ConfigError, env_layer, load_config

    layer = env_layer(os.environ if env is None else env)
    # A running stack's recorded settings hold secrets already redacted: shown as such.
    hidden = {k for k, v in layer.items() if v == REDACTED}
    try:
        config = asdict(load_config({k: v for k, v in layer.items() if k not in hidden}))
    except ConfigError as exc:  # shown, as `python -m edge` would refuse to start with it
        return {"error": f"bad configuration: {exc}"}
    for key in hidden:
        config[key.removeprefix("OUTPOST_EDGE_").lower()] = REDACTED
    return config


def _settings_kwargs(cls: type, env: dict[str, str]) -> dict[str, Any]:
    """`cls`'s fields as set by `env` (its env prefix stripped; JSON for lists and objects)."""
    prefix = cls.model_config.get("env_prefix", "")  # type: ignore[attr-defined]
    kwargs: dict[str, Any] = {}
    for key, value in env.items():
        if key.startswith(prefix) and key[len(prefix) :].lower() in cls.model_fields:  # type: ignore[attr-defined]
            if value[:1] in "[{":
                value = json.loads(value)
            kwargs[key[len(prefix) :].lower()] = value
    return kwargs


def _running_builders(state: dict[str, Any]) -> dict[str, Callable[[], dict[str, Any]]]:
    """What the running stack's components were started with (`stack.json`'s `config`)."""
    from origin.identity.settings import IdentitySettings
    from origin.secrets.settings import VaultSettings
    from origin.settings import OriginSettings

    config = state.get("config", {})
    origin_env = config.get("origin", {})
    origin_urls = [urlsplit(o["url"]) for o in state.get("origins", [])]
    flags: dict[str, Any] = {"models_dir": state.get("models_dir")}
    if origin_urls:  # `outpost up` passes these as flags; the replicas differ only by port
        flags |= {"host": origin_urls[0].hostname, "port": origin_urls[0].port}

    def settings(cls: type, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        # Built from the recorded env alone: the shell running this command has no say. Values
        # recorded redacted are shown redacted, not parsed.
        kwargs = {**_settings_kwargs(cls, origin_env), **(extra or {})}
        hidden = {k for k, v in kwargs.items() if v == REDACTED}
        with _only_env({}):
            shown = cls(
                **{k: v for k, v in kwargs.items() if v is not None and k not in hidden}
            ).model_dump(mode="json")
        return {**shown, **dict.fromkeys(hidden, REDACTED)}

    stack = {k: v for k, v in state.items() if k not in ("config", "token_command")}
    return {
        "origin": lambda: settings(OriginSettings, flags),
        "vault": lambda: settings(VaultSettings),
        "identity": lambda: settings(IdentitySettings),
        "edge": lambda: _edge(config.get("edge", {})),
        "stack": lambda: stack,
    }


@contextmanager
def _only_env(env: dict[str, str]) -> Iterator[None]:
    """Hide the OUTPOST_* variables of this shell while settings are built."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("OUTPOST_")}
    for key in saved:
        del os.environ[key]
    os.environ.update(env)
    try:
        yield
    finally:
        for key in env:
            os.environ.pop(key, None)
        os.environ.update(saved)


def effective_config(
    component: str = "all", running: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One component's configuration (or all), redacted: the running stack's (`running`, the
    parsed `stack.json`) or, without one, the merged defaults + environment."""
    from origin.identity.settings import IdentitySettings
    from origin.secrets.settings import VaultSettings
    from origin.settings import OriginSettings
    from origin.tracing import TracingSettings
    from outpost.stack import StackSettings

    builders: dict[str, Callable[[], dict[str, Any]]] = {
        "origin": lambda: OriginSettings().model_dump(mode="json"),
        "vault": lambda: VaultSettings().model_dump(mode="json"),
        "identity": lambda: IdentitySettings().model_dump(mode="json"),
        "tracing": lambda: TracingSettings().model_dump(mode="json"),
        "edge": _edge,
        "stack": lambda: StackSettings().model_dump(mode="json"),
    }
    if running is not None:
        builders = _running_builders(running)
    names = list(builders) if component == "all" else [component]
    unknown = [n for n in names if n not in builders]
    if unknown:
        from outpost.errors import OutpostError

        raise OutpostError(f"unknown component {unknown[0]!r}", hint=f"one of {sorted(builders)}")
    return {name: redact(builders[name]()) for name in names}
