"""Commands that read or change the configured catalog: ingest, calibrate, stats, products, log."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from prodmatch.application.ingesting import (
    IngestOutcome,
    calibrate,
    engine_downloader,
    engine_embedders,
    ingest_file,
)
from prodmatch.application.products import delete_product, get_product
from prodmatch.catalog.feed import download_options
from prodmatch.cli.common import (
    DataDirOption,
    FilterOption,
    IdCol,
    ImageCol,
    ImagesRoot,
    JsonOption,
    ModelOption,
    NameCol,
    TextCols,
    column_options,
    configured_catalog,
    describe_calibrations,
    err,
    out,
    print_json,
    progress_display,
    row_counter,
    settings_for,
    table_rows,
)
from prodmatch.cli.download import (
    AllowHostOption,
    EngineOption,
    MetricsFileOption,
    RayAddressOption,
    download_feedback,
    print_download,
)
from prodmatch.stores.filters import check_keys, parse_filters

products_app = typer.Typer(help="Browse and edit the products in a catalog.", no_args_is_help=True)
log_app = typer.Typer(help="The query log.", no_args_is_help=True)


def ingest(
    ctx: typer.Context,
    catalog: Annotated[Path, typer.Argument(help="CSV, JSONL or JSON-array catalog")],
    data_dir: DataDirOption = None,
    model: ModelOption = None,
    images_root: ImagesRoot = None,
    id_col: IdCol = None,
    name_col: NameCol = None,
    image_col: ImageCol = None,
    text_cols: TextCols = None,
    allow_host: AllowHostOption = None,
    metrics_file: MetricsFileOption = None,
    engine: EngineOption = "local",
    ray_address: RayAddressOption = None,
    ray_actors: Annotated[int, typer.Option("--ray-actors", min=1, help="model actors (one model each)")] = 2,
    as_json: JsonOption = False,
) -> None:
    """Add or update the products of CATALOG (idempotent; unchanged products are not re-embedded). Image URLs are
    downloaded first into the data dir (as `prodmatch download` does); rows whose image was refused or failed are
    rejected with the reason."""
    settings = settings_for(ctx, data_dir)
    err.print(f"[cyan]ingesting into the {settings.location().describe()}")
    columns = column_options(id_col, name_col, image_col, text_cols)
    announce = lambda message: err.print(f"[cyan]{message}")  # noqa: E731
    options = download_options(settings.download, allow_host)
    embedders = engine_embedders(engine, ray_address, ray_actors)
    engine_option = {} if embedders is None else {"embedders": embedders}
    with (
        configured_catalog(ctx, data_dir, model=model, create=True, announce=announce, **engine_option) as opened,
        progress_display() as progress,
        download_feedback(progress, catalog.name, metrics_file) as fetched,
    ):
        advance = row_counter(progress, f"ingesting {catalog.name}")
        downloader = engine_downloader(engine, ray_address)  # --engine ray: the downloads are sharded on Ray too
        outcome = ingest_file(
            opened, catalog, columns, images_root, advance, download=options, download_progress=fetched,
            downloader=downloader,
        )  # fmt: skip
    if outcome.download is not None and not as_json:
        print_download(outcome.download)
    if outcome.calibrations is not None:
        err.print(describe_calibrations(outcome.calibrations))
    if as_json:
        download = outcome.download.as_dict() if outcome.download else None
        print_json({**outcome.report.as_dict(), "download": download})
        return
    _print_ingest(outcome)


def _print_ingest(outcome: IngestOutcome) -> None:
    report = outcome.report
    out.print(
        f"[green]added {report.added}[/] · updated {report.updated} · unchanged {report.unchanged} · "
        f"[red]rejected {len(report.rejected)}[/] · {report.images} images embedded in {report.seconds:.1f}s · "
        f"{report.duplicate_groups} duplicate-listing groups"
    )
    for rejection in report.rejected:
        where = f"  line {rejection.line}" + (f" (id {rejection.id})" if rejection.id else "")
        out.print(f"{where}: {rejection.reason}")


def calibrate_command(ctx: typer.Context, data_dir: DataDirOption = None) -> None:
    """Re-fit the match / no-match decision on the catalog (ingest does this after changes)."""
    with configured_catalog(ctx, data_dir) as opened:
        out.print(describe_calibrations(calibrate(opened)))


def stats(ctx: typer.Context, data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Counts, model, index types, duplicate listings and sizes on disk."""
    with configured_catalog(ctx, data_dir) as opened:
        indexes = {space: opened.stores.index(space) for space in opened.record.spaces}
        summary = {
            "data_dir": str(opened.location.folder),
            "catalog": opened.location.describe(),
            "products": opened.store.count(),
            "model": opened.record.model_dump(),
            "indexes": {space: {"kind": index.kind, "vectors": len(index)} for space, index in indexes.items()},
            "duplicate_groups": opened.store.duplicate_groups(),
            "repairs": [repair.model_dump() for repair in opened.stores.repairs],
            "disk_bytes": opened.files.disk_usage(),
        }
    if as_json:
        print_json(summary)
        return
    for key, value in summary.items():
        out.print(f"[bold]{key}[/]: {value}")


@products_app.command("list")
def products_list(
    ctx: typer.Context,
    data_dir: DataDirOption = None,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    filters: FilterOption = None,
    as_json: JsonOption = False,
) -> None:
    """List products, optionally filtered."""
    parsed = parse_filters(filters)
    with configured_catalog(ctx, data_dir) as opened:
        check_keys(parsed, opened.facts.attribute_keys())
        items, total = opened.store.page(offset, limit, parsed), opened.store.count(parsed)
    if as_json:
        print_json({"total": total, "items": [{"id": p.id, **p.as_dict()} for p in items]})
        return
    table_rows(f"{total} products", ["id", "name"], [[p.id, p.name or ""] for p in items])


@products_app.command("show")
def products_show(ctx: typer.Context, product_id: str, data_dir: DataDirOption = None) -> None:
    """Show one product as JSON."""
    with configured_catalog(ctx, data_dir) as opened:
        found = get_product(opened, product_id)
    print_json({"id": found.id, **found.as_dict()})


@products_app.command("delete")
def products_delete(ctx: typer.Context, product_id: str, data_dir: DataDirOption = None) -> None:
    """Delete one product and its vectors."""
    with configured_catalog(ctx, data_dir) as opened:
        delete_product(opened, product_id)
        out.print(f"deleted {product_id} from the {opened.location.describe()}")


@log_app.command("tail")
def log_tail(
    ctx: typer.Context,
    data_dir: DataDirOption = None,
    lines: Annotated[int, typer.Option("-n", "--lines", min=1, max=10_000)] = 20,
    as_json: JsonOption = False,
) -> None:
    """The most recent answered match requests."""
    with configured_catalog(ctx, data_dir) as opened:
        entries = opened.store.recent_queries(lines)
    if as_json:
        print_json([asdict(entry) for entry in entries])
        return
    rows = [
        [
            entry.at.isoformat(timespec="seconds"),
            entry.modality,
            ", ".join(entry.top_ids[:3]),
            f"{entry.top_scores[0]:.3f}" if entry.top_scores else "-",
            f"{entry.took_ms:.1f}",
            "-" if entry.is_match is None else ("yes" if entry.is_match else "no"),
            entry.query_id,
        ]
        for entry in entries
    ]
    columns = ["at", "modality", "top ids", "top score", "ms", "match", "query id"]
    table_rows(f"last {len(entries)} queries", columns, rows)
