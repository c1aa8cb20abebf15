"""`outpost config show`: each component's effective settings, with secrets redacted."""

from __future__ import annotations

import os
import re
from dataclasses import asdict
from typing import Any

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


def _edge() -> dict[str, Any]:
    from edge.config import ENV_PREFIX, from_mapping

    env = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIX)}
    return asdict(from_mapping(env))


def effective_config(component: str = "all") -> dict[str, Any]:
    """The merged defaults + environment of one component (or all), redacted."""
    from origin.identity.settings import IdentitySettings
    from origin.secrets.settings import VaultSettings
    from origin.settings import OriginSettings
    from origin.tracing import TracingSettings
    from outpost.stack import StackSettings

    builders = {
        "origin": lambda: OriginSettings().model_dump(mode="json"),
        "vault": lambda: VaultSettings().model_dump(mode="json"),
        "identity": lambda: IdentitySettings().model_dump(mode="json"),
        "tracing": lambda: TracingSettings().model_dump(mode="json"),
        "edge": _edge,
        "stack": lambda: StackSettings().model_dump(mode="json"),
    }
    names = list(builders) if component == "all" else [component]
    unknown = [n for n in names if n not in builders]
    if unknown:
        from outpost.errors import OutpostError

        raise OutpostError(f"unknown component {unknown[0]!r}", hint=f"one of {sorted(builders)}")
    return {name: redact(builders[name]()) for name in names}
