"""`outpost models list|validate`: the origin's own loader, run without a server."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from outpost.errors import OutpostError


def validate_folders(folders: list[Path], console: Console) -> int:
    """Validate each folder as the origin would load it; print problems; return their count."""
    from origin.repository import validate_model_folder

    count = 0
    for folder in folders:
        with console.status(f"validating {folder.name} (loads and warms each version)"):
            errors = validate_model_folder(folder)
        for err in errors:
            console.print(f"[red]✗[/] {err}", highlight=False, soft_wrap=True)
        if not errors:
            console.print(f"[green]✓[/] {folder}", highlight=False, soft_wrap=True)
        count += len(errors)
    return count


def _from_disk(models_dir: Path) -> list[dict[str, Any]]:
    from origin.repository.config import CONFIG_FILE, ModelFolderError, load_model_config
    from origin.repository.loader import version_dirs

    if not models_dir.is_dir():
        raise OutpostError(f"{models_dir}: not a folder", hint="pass --models-dir")
    rows = []
    for folder in sorted(p for p in models_dir.iterdir() if p.is_dir()):
        if not (folder / CONFIG_FILE).exists():
            continue
        row: dict[str, Any] = {"name": folder.name, "versions": sorted(version_dirs(folder))}
        try:
            row["task"] = load_model_config(folder / CONFIG_FILE).task
            row["status"] = "config ok" if row["versions"] else "no versions built"
        except ModelFolderError as exc:
            row["status"] = f"invalid: {exc}"
        rows.append(row)
    return rows


def _from_origin(url: str) -> list[dict[str, Any]]:
    try:
        resp = httpx.get(f"{url.rstrip('/')}/v1/models", timeout=5.0)
        resp.raise_for_status()
    except httpx.HTTPError as exc:
        raise OutpostError(
            f"cannot list models at {url}: {exc}", hint="is the origin up?"
        ) from None
    rows = []
    for model in resp.json()["data"]:
        states = {str(v["version"]): v["state"] for v in model.get("versions", [])}
        rows.append(
            {
                "name": model["id"],
                "task": model.get("task"),
                "versions": [int(v) for v in states],
                "served": model.get("served_version"),
                "status": ", ".join(f"v{v} {s}" for v, s in states.items()) or "no versions",
            }
        )
    return rows


def _from_origins(origins: Mapping[str, str]) -> list[dict[str, Any]]:
    """Rows from every origin of a running stack (its URL -> where to ask): the first answer per
    model, and which version each origin serves (`served_by`), so a replica that lags behind
    shows."""
    rows: dict[str, dict[str, Any]] = {}
    unreachable = []
    urls = list(origins)
    for url in urls:
        try:
            found = _from_origin(origins[url])
        except OutpostError:
            unreachable.append(url)
            continue
        for row in found:
            merged = rows.setdefault(row["name"], {**row, "served_by": {}})
            merged["served_by"][url] = row.get("served")
    if len(unreachable) == len(urls):
        raise OutpostError(
            f"no origin of the running stack answered ({', '.join(urls)})",
            hint="read the stack's log; `--disk` lists the model folder instead",
        )
    for row in rows.values():
        for url in unreachable:
            row["served_by"][url] = None
        if len(set(row["served_by"].values())) > 1:
            row["status"] += (
                " (origins differ: "
                + ", ".join(f"{u} v{v}" for u, v in row["served_by"].items())
                + ")"
            )
    return list(rows.values())


def list_models(
    models_dir: Path, url: str | None, origins: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """Rows for `outpost models list`: from one origin (`url`), the running stack's origins, or
    the folder on disk."""
    if url:
        return _from_origin(url)
    if origins:
        return _from_origins(origins)
    return _from_disk(models_dir)
