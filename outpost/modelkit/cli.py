"""`outpost models import|build-demo`: a typer sub-app the main CLI mounts as `models`.

Failures raise ModelKitError (an OutpostError), which `outpost.cli.main` prints as one line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

app = typer.Typer(
    name="models",
    help="The model repository: list, validate, import Hugging Face checkpoints, build the demos.",
    no_args_is_help=True,
)
console = Console(stderr=True)

ModelsDir = Annotated[
    Path,
    typer.Option(
        "--models-dir",
        envvar="OUTPOST_MODELS_DIR",
        help="The model repository the origin serves.",
    ),
]


@contextmanager
def _progress(total: int) -> Iterator[Callable[[str], None]]:
    """A rich progress bar advanced by one per step message."""
    with Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("starting", total=total)
        seen = 0

        def step(message: str) -> None:
            nonlocal seen
            if seen:
                bar.advance(task)
            seen += 1
            bar.update(task, description=message)

        yield step
        bar.update(task, completed=total)


@app.command("import")
def import_command(
    src: Annotated[Path, typer.Argument(help="Local Hugging Face checkpoint folder.")],
    name: Annotated[str, typer.Option("--name", help="Model name (folder under models/).")],
    task: Annotated[
        str,
        typer.Option(
            "--task",
            help="embeddings | text-classification | rerank | image-classification | "
            "image-embeddings",
        ),
    ] = "embeddings",
    int8: Annotated[
        bool, typer.Option("--int8", help="Serve a dynamically quantized int8 graph.")
    ] = False,
    version: Annotated[
        int | None, typer.Option("--version", help="Version number (default: next free).")
    ] = None,
    models_dir: ModelsDir = Path("models"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Export SRC to ONNX, verify it against PyTorch, and add it as a new version."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from outpost.modelkit.importer import import_checkpoint

    with _progress(total=6 if int8 else 4) as step:
        report = import_checkpoint(
            src, models_dir, name, task=task, int8=int8, version=version, progress=step
        )
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
        return
    table = Table(title=f"{report.name} version {report.version}", show_header=False)
    table.add_row("folder", report.version_dir)
    table.add_row("task", report.task)
    table.add_row("export", f"{report.export.export_seconds:.1f} s")
    if report.export.min_cosine is not None:
        table.add_row("ONNX vs PyTorch", f"min cosine {report.export.min_cosine:.6f}")
    if report.export.max_abs_logit_diff is not None:
        table.add_row("ONNX vs PyTorch", f"max |Δlogit| {report.export.max_abs_logit_diff:.2e}")
    if report.int8_report is not None:
        r = report.int8_report
        table.add_row(
            "int8 vs fp32",
            f"mean cosine {r.mean_cosine:.4f}, min {r.min_cosine:.4f}, "
            f"{r.int8_bytes / 1e6:.1f} MB (fp32 {r.fp32_bytes / 1e6:.1f} MB)",
        )
    table.add_row("model.yaml", "written" if report.model_yaml_written else "kept")
    Console().print(table)


@app.command("build-demo")
def build_demo_command(
    models_dir: ModelsDir = Path("models"),
    cache_dir: Annotated[
        Path, typer.Option("--cache-dir", help="Build cache kept between runs.")
    ] = Path(".outpost/cache/models"),
    as_json: Annotated[bool, typer.Option("--json", help="Print build stamps as JSON.")] = False,
) -> None:
    """Build (or skip, when up to date) the demo models: minilm, support-intent, iris, shapes,
    shapes-embed."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from outpost.modelkit.demo import build_demo_models

    with _progress(total=16) as step:
        stamps = build_demo_models(models_dir, cache_dir=cache_dir, progress=step)
    if as_json:
        typer.echo(json.dumps(stamps, indent=2))
        return
    table = Table(title=f"demo models in {models_dir}")
    for column in ("model", "version", "built in", "check"):
        table.add_column(column)
    for name, versions in stamps.items():
        for version, stamp in versions.items():
            table.add_row(name, version, f"{stamp.get('build_seconds', 0):.1f} s", _check(stamp))
    Console().print(table)


def _check(stamp: dict[str, Any]) -> str:
    if "export" in stamp:
        return f"ONNX vs PyTorch min cosine {stamp['export']['min_cosine']:.6f}"
    if "int8" in stamp:
        return f"int8 vs fp32 mean cosine {stamp['int8']['mean_cosine']:.4f}"
    if "test_accuracy" in stamp:
        return f"held-out accuracy {stamp['test_accuracy']:.1%}"
    return ""
