"""What every command shares: settings from flags and environment, options, consoles, JSON and progress output."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from prodmatch.catalog.ingest import ColumnOptions
from prodmatch.composition import Catalog, open_catalog
from prodmatch.config import Settings
from prodmatch.matching.decision import Calibration

out = Console()
err = Console(stderr=True)

DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="data dir [default: $PRODMATCH_DATA_DIR or ./prodmatch-data]")
]
JsonOption = Annotated[bool, typer.Option("--json", help="print one JSON object instead of a table")]
FilterOption = Annotated[
    list[str] | None, typer.Option("--filter", help="KEY=VALUE, KEY!=VALUE, KEY>=NUM, KEY<=NUM (repeatable)")
]
IdCol = Annotated[str | None, typer.Option("--id-col", help="id column [auto: id, product_id, ProductId, sku]")]
NameCol = Annotated[str | None, typer.Option("--name-col", help="name column [auto: name, title, ProductTitle]")]
ImageCol = Annotated[str | None, typer.Option("--image-col", help="image column [auto: image, image_path]")]
TextCols = Annotated[str | None, typer.Option("--text-cols", help="extra text columns, comma-separated")]
ImagesRoot = Annotated[Path | None, typer.Option("--images-root", help="base folder for relative image paths")]
CalibrationOption = Annotated[
    Path | None, typer.Option("--calibration-images", help="folder of sample photos for static int8 calibration")
]
ModelOption = Annotated[str | None, typer.Option("--model", help="registry name or bundle folder")]


def settings_for(ctx: typer.Context, data_dir: Path | None = None) -> Settings:
    """Settings from the environment, with the command line's data dir and store URLs on top."""
    overrides = dict(ctx.find_root().obj or {})
    if data_dir:
        overrides["data_dir"] = data_dir
    return Settings(**overrides)


@contextmanager
def configured_catalog(ctx: typer.Context, data_dir: Path | None, **options: Any) -> Iterator[Catalog]:
    """The catalog the flags and environment name, opened for one command and closed after it."""
    with open_catalog(settings_for(ctx, data_dir), **options) as catalog:
        yield catalog


def column_options(
    id_col: str | None, name_col: str | None, image_col: str | None, text_cols: str | None
) -> ColumnOptions:
    return ColumnOptions(id_col, name_col, image_col, text_cols.split(",") if text_cols else None)


def photos_in(folder: Path | None) -> list[Path]:
    """The JPEG/PNG/WebP files in FOLDER (recursively), sorted; none for no folder."""
    if folder is None:
        return []
    suffixes = {".jpg", ".jpeg", ".png", ".webp"}
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in suffixes)


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, default=str))


def describe_calibrations(calibrations: dict[str, Calibration]) -> str:
    if not calibrations:
        return "match decision: too few products to calibrate"
    parts = [
        f"{space} (balanced accuracy {c.balanced_accuracy:.2f} on {c.positives}+{c.negatives} queries)"
        for space, c in calibrations.items()
    ]
    return "match decision calibrated: " + ", ".join(parts)


@contextmanager
def progress_display() -> Iterator[Progress]:
    """One live display for a command (rich allows one at a time); each stage adds its own task to it."""
    columns = [
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=err, transient=False) as progress:
        yield progress


def row_counter(progress: Progress, label: str) -> Callable[[int, int], None]:
    """A task counting rows and images (ingest's progress callback)."""
    task = progress.add_task(label, total=None, info="", images=0)

    def advance(rows: int, images: int) -> None:
        state = progress.tasks[task]
        done, images = state.completed + rows, state.fields["images"] + images
        rate = done / (state.elapsed or 1e-9)
        progress.update(task, completed=done, images=images, info=f"{done} rows · {images} images · {rate:.1f} rows/s")

    return advance


def table_rows(title: str, columns: list[str], rows: list[list[str]], justify: str = "left") -> None:
    """Print ROWS as a rich table."""
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        table.add_row(*row)
    out.print(table)
