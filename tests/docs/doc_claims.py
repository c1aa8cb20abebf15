"""Hold the docs to the code: every route, setting and CLI command a page names must exist.

    python -m tests.docs.doc_claims        # prints what the docs name that the code lacks

What counts as a name:
- a route: a code span such as `POST /v1/embeddings` or `/v2/models/{model}[/versions/{version}]`,
  or a URL path in a code block (`$EDGE/v1/models`, `http://127.0.0.1:8787/healthz`), whose first
  segment is one the code serves (so `/models`, a mount path, is not taken for a route). It must
  match the edge's route table or one of the origin's routes, with its method when one is given.
- a setting: any `OUTPOST_*` environment variable, a prefix such as `OUTPOST_EDGE_*` included.
  It must be a field of a settings class, an edge setting, a CLI option's env var, or a variable
  the code reads from `os.environ`.
- a command: `outpost <command> [<subcommand>]` or `./dev <command> ...` in code, and
  `npm run <script>`. It must be in the CLI's command tree (or `package.json`'s scripts).

The checker imports the product's own packages, so running it on a mutated copy of them (the test
does) shows that a rename is caught.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("origin", "edge", "outpost", "vault")
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD")


@dataclass(frozen=True, order=True)
class Claim:
    """One name a page uses: where, what kind, and the name itself."""

    page: str
    line: int
    kind: str  # route | setting | command
    name: str

    def __str__(self) -> str:
        return f"{self.page}:{self.line}: {self.kind} {self.name}"


def doc_pages() -> list[Path]:
    """The hand-written pages (generated references come from the code itself) and the README."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


# -- extraction ----------------------------------------------------------------------------------
_FENCE = re.compile(r"^(\s*)(```|~~~)")
_SPAN = re.compile(r"`([^`\n]+)`")
_ROUTE_SPAN = re.compile(rf"^(?:({'|'.join(METHODS)}) )?(/[^\s`]*)$")
_URL_PATH = re.compile(
    r"(?:\$\{?EDGE\}?|https?://[A-Za-z0-9.\-\[\]:]+|localhost:\d+)(/[^\s'\"\\)`]*)"
)
_SETTING = re.compile(r"\bOUTPOST_[A-Z0-9_]*[A-Z0-9_]")
_COMMAND = re.compile(r"(?:^|[\s(=$`])(?:\./dev|outpost)\s+([a-z][a-z-]*)(?:\s+([a-z][a-z-]*))?")
_NPM = re.compile(r"\bnpm run ([a-z][\w:.-]*)")


def _lines(text: str) -> Iterator[tuple[int, str, bool]]:
    """(line number, line, inside a fenced code block)."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        yield number, line, fenced


def extract(page: Path) -> list[Claim]:
    """Every route, setting and command `page` names."""
    rel = str(page.relative_to(ROOT))
    found: list[Claim] = []
    for number, line, fenced in _lines(page.read_text(encoding="utf-8")):
        code = [line] if fenced else _SPAN.findall(line)
        for span in code:
            match = _ROUTE_SPAN.match(span.strip()) if not fenced else None
            if match:
                method = f"{match.group(1)} " if match.group(1) else ""
                found.append(Claim(rel, number, "route", method + match.group(2)))
            for path in _URL_PATH.findall(span):
                found.append(Claim(rel, number, "route", path))
            for cmd, sub in _COMMAND.findall(span):
                found.append(Claim(rel, number, "command", f"{cmd} {sub}".strip()))
            for script in _NPM.findall(span):
                found.append(Claim(rel, number, "command", f"npm run {script}"))
        for name in _SETTING.findall(line):
            found.append(Claim(rel, number, "setting", name))
    return found


# -- what the code has ---------------------------------------------------------------------------
@dataclass
class Code:
    """The names the code defines: a route matcher, the settings, the command tree."""

    route_exists: Callable[[str | None, str], bool]
    route_roots: set[str]
    settings: set[str]
    commands: set[tuple[str, ...]]
    npm_scripts: set[str]


def _origin_routes() -> list[tuple[str, set[str]]]:
    from origin.app import create_app
    from origin.identity.metrics import VaultMetrics
    from origin.identity.router import build_router
    from origin.identity.settings import IdentitySettings
    from origin.settings import OriginSettings

    with tempfile.TemporaryDirectory() as empty:
        app = create_app(OriginSettings(models_dir=Path(empty), watch=False))
    app.include_router(build_router(IdentitySettings(), None, None, VaultMetrics()))  # type: ignore[arg-type]
    return [(r.path_format, set(r.methods or ())) for r in app.routes if hasattr(r, "path_format")]


def _route_matcher() -> tuple[Callable[[str | None, str], bool], set[str]]:
    from edge.core import routes as edge_routes

    origin_routes = _origin_routes()
    origin = []
    for template, methods in origin_routes:
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        origin.append((re.compile(pattern), methods))

    def exists(method: str | None, path: str) -> bool:
        if path in RECEIVER_ROUTES:  # the local trace receiver of `outpost up --monitor`
            return method in (None, "POST")
        try:
            found = edge_routes.match(method or "GET", path)
        except edge_routes.MethodNotAllowed as exc:
            found = None if method else exc  # a path the edge knows, with other methods
        if found is not None:
            return True
        return any(
            regex.fullmatch(path) and (method is None or method in methods or method == "HEAD")
            for regex, methods in origin
        )

    roots = {p.pattern.lstrip("/").split("/")[0].split("(")[0] for p, _ in edge_routes._TABLE}
    roots |= {t.lstrip("/").split("/")[0] for t, _ in origin_routes}
    return exists, {r.replace("\\", "") for r in roots if r}


# Where OTLP/HTTP spans go: what the local trace receiver (outpost/monitoring/receiver.py) and any
# collector serve.
RECEIVER_ROUTES = frozenset({"/v1/traces"})


def _settings() -> set[str]:
    from edge.config import field_docs
    from origin.identity.settings import IdentitySettings
    from origin.secrets.settings import VaultSettings
    from origin.settings import OriginSettings
    from origin.tracing import TracingSettings
    from outpost.stack import StackSettings

    names = {env for env, _, _ in field_docs()}
    for cls in (OriginSettings, VaultSettings, IdentitySettings, StackSettings, TracingSettings):
        prefix = cls.model_config.get("env_prefix", "")
        names |= {(prefix + field).upper() for field in cls.model_fields}
    return names | set(_env_reads())


def _env_reads() -> Iterator[str]:
    """OUTPOST_* names the code reads directly: os.environ[...] / .get / getenv, envvar=..."""
    # The packages as imported (a mutated copy, under test), and the docs hooks.
    folders = [Path(importlib.import_module(p).__file__ or "").parent for p in PRODUCT]
    for folder in (*folders, ROOT / "docs" / "_hooks"):
        for path in folder.rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                key: ast.expr | None = None
                if isinstance(node, ast.Subscript) and _is_environ(node.value):
                    key = node.slice
                elif isinstance(node, ast.Call):
                    func = node.func
                    if isinstance(func, ast.Attribute) and (
                        (func.attr in ("get", "setdefault", "pop") and _is_environ(func.value))
                        or func.attr == "getenv"
                    ):
                        key = node.args[0] if node.args else None
                    for kw in node.keywords:
                        if kw.arg == "envvar" and isinstance(kw.value, ast.Constant):
                            yield str(kw.value.value)
                if isinstance(key, ast.Constant) and str(key.value).startswith("OUTPOST_"):
                    yield str(key.value)


def _is_environ(node: ast.expr) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ"


def _command_tree() -> set[tuple[str, ...]]:
    import typer

    from outpost.cli import app

    def walk(group: object, prefix: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        for name, command in getattr(group, "commands", {}).items():
            yield (*prefix, name)
            yield from walk(command, (*prefix, name))

    # `./dev` adds `help` to what it hands to the CLI.
    return set(walk(typer.main.get_command(app), ())) | {("help",)}


def code_names() -> Code:
    exists, roots = _route_matcher()
    scripts = set(json.loads((ROOT / "package.json").read_text()).get("scripts", {}))
    return Code(exists, roots, _settings(), _command_tree(), scripts)


# -- checking ------------------------------------------------------------------------------------
def _expansions(path: str) -> list[str]:
    """Concrete paths for a documented template: placeholders filled, optional parts both ways."""
    path = path.split("?", 1)[0].split("#", 1)[0]
    path = re.sub(r"\{[^}/]+\}|<[^>/]+>|\.\.\.|\$\w+", "m1", path)
    optional = re.search(r"\[([^\[\]]*)\]", path)
    if optional:
        head, tail = path[: optional.start()], path[optional.end() :]
        return _expansions(head + tail) + _expansions(head + optional.group(1) + tail)
    alternatives = re.search(r"([^/]*)\|([^/]*)", path)
    if alternatives:
        head, tail = path[: alternatives.start()], path[alternatives.end() :]
        return [p for alt in alternatives.groups() for p in _expansions(head + alt + tail)]
    return [path.rstrip(".,:;") or "/"]


def unknown(claims: Iterable[Claim], code: Code) -> list[Claim]:
    """The claims the code does not back."""
    bad = []
    for claim in claims:
        if claim.kind == "route":
            method, _, path = claim.name.rpartition(" ")
            if "%" in path:
                continue  # an example of a malformed path, quoted as such
            root = path.lstrip("/").split("/")[0]
            if root not in code.route_roots:
                continue
            paths = _expansions(path)
            # A bare family such as `/v1` names the routes under it.
            if not all(
                code.route_exists(method or None, p)
                or any(code.route_exists(None, f"{p.rstrip('/')}/{s}") for s in ("models", "m1"))
                for p in paths
            ):
                bad.append(claim)
        elif claim.kind == "setting":
            name = claim.name
            ok = (
                any(s.startswith(name) for s in code.settings)
                if name.endswith("_")
                else name in code.settings
            )
            if not ok:
                bad.append(claim)
        elif claim.kind == "command":
            words = tuple(claim.name.split())
            if words[:2] == ("npm", "run"):
                if words[2] not in code.npm_scripts:
                    bad.append(claim)
            elif words not in code.commands and words[:1] not in code.commands:
                bad.append(claim)
            elif words not in code.commands and _is_group(words[:1], code.commands):
                bad.append(claim)  # `outpost vault nope`: a group with no such subcommand
    return sorted(set(bad))


def _is_group(prefix: tuple[str, ...], commands: set[tuple[str, ...]]) -> bool:
    return any(len(c) > len(prefix) and c[: len(prefix)] == prefix for c in commands)


def check(pages: Iterable[Path] | None = None) -> list[Claim]:
    """What the pages name that the code lacks (empty when the docs hold)."""
    claims = [c for page in (pages or doc_pages()) for c in extract(page)]
    return unknown(claims, code_names())


if __name__ == "__main__":
    problems = check()
    for problem in problems:
        print(problem)
    sys.exit(1 if problems else 0)
