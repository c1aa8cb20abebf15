"""mkdocs hooks: generated reference pages and `<!-- outpost:gen NAME -->` markers.

- `on_files` adds the pages that are entirely generated (API references, settings references).
- `on_page_markdown` replaces each marker with the output of `generators.GENERATORS[NAME]`.
- `on_config` / `on_files` serve Mermaid from the npm package (`package.json`), so diagrams render
  offline: Material loads Mermaid from a CDN only when no `mermaid` global exists.

A generator that fails (broken import, renamed field) fails the build with a PluginError naming
it. Set `OUTPOST_DOCS_LENIENT=1` to render a visible placeholder instead (for work in progress
only; `./dev test` builds strictly).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for entry in (str(HERE), str(ROOT)):
    if entry not in sys.path:
        sys.path.insert(0, entry)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import generators  # noqa: E402

log = logging.getLogger("mkdocs.plugins.outpost_docs")
MARKER = re.compile(r"<!--\s*outpost:gen\s+([a-z0-9-]+)\s*-->")

# Pages made only of generated content: path -> (title, intro, generator name).
GENERATED_PAGES: dict[str, tuple[str, str, str]] = {
    "api/origin.md": (
        "Origin API reference",
        "What each origin serves. Mobile apps call the same paths on the edge.",
        "api-origin",
    ),
    "api/edge.md": ("Edge API reference", "", "api-edge"),
    "reference/origin-settings.md": (
        "Origin settings reference",
        "How to configure the origin, its Vault client and its token issuer.",
        "origin-settings",
    ),
    "reference/edge-config.md": ("Edge configuration reference", "", "edge-config"),
}


def render(name: str) -> str:
    """The Markdown of one generator; raises PluginError unless OUTPOST_DOCS_LENIENT is set."""
    try:
        generator = generators.GENERATORS[name]
    except KeyError:
        raise PluginError(f"outpost docs: unknown generator {name!r}") from None
    try:
        return generator()
    except Exception as exc:
        if os.environ.get("OUTPOST_DOCS_LENIENT") == "1":
            log.info("generator %s failed: %s: %s", name, type(exc).__name__, exc)
            return (
                f'!!! warning "Not generated"\n\n    The `{name}` generator failed: '
                f"`{type(exc).__name__}: {exc}`\n"
            )
        raise PluginError(
            f"outpost docs: generator {name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc


MERMAID_JS = ROOT / "node_modules" / "mermaid" / "dist" / "mermaid.min.js"
MERMAID_URI = "assets/javascripts/mermaid.min.js"


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    if not MERMAID_JS.is_file():
        raise PluginError(
            f"outpost docs: {MERMAID_JS.relative_to(ROOT)} is missing, so diagrams would need a "
            "CDN; run `npm ci` (./dev does)"
        )
    if MERMAID_URI not in config.extra_javascript:
        config.extra_javascript.append(MERMAID_URI)
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    for src_uri, (title, intro, name) in GENERATED_PAGES.items():
        content = f"# {title}\n\n{intro}\n\n<!-- outpost:gen {name} -->\n"
        files.append(File.generated(config, src_uri, content=content))
    files.append(File.generated(config, MERMAID_URI, abs_src_path=str(MERMAID_JS)))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    return MARKER.sub(lambda m: render(m.group(1)), markdown)
