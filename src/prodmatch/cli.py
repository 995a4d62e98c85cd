"""The prodmatch command line: parses options, calls the services, prints. No logic of its own."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from prodmatch.config import Settings
from prodmatch.errors import ModelUnavailableError, ProdmatchError
from prodmatch.stores.availability import unavailable_reason

app = typer.Typer(
    help="Match product photos and descriptions against a catalog.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
model_app = typer.Typer(help="Embedding models: list, export bundles, benchmark.", no_args_is_help=True)
products_app = typer.Typer(help="Browse and edit the products in a data dir.", no_args_is_help=True)
app.add_typer(model_app, name="model")
app.add_typer(products_app, name="products")

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


@app.callback()
def stores(
    ctx: typer.Context,
    metadata_url: Annotated[
        str | None,
        typer.Option(
            "--metadata-url",
            help="sqlite:///PATH | postgresql://USER@HOST/DB | mongodb://HOST/DB [default: $PRODMATCH_METADATA_URL "
            "or SQLite in the data dir]",
        ),
    ] = None,
    vectors_url: Annotated[
        str | None,
        typer.Option(
            "--vectors-url",
            help="faiss:///DIR | pgvector://USER@HOST/DB | qdrant://HOST:6333 | qdrant+local:///DIR "
            "[default: $PRODMATCH_VECTORS_URL or FAISS in the data dir]",
        ),
    ] = None,
    model_url: Annotated[
        str | None,
        typer.Option(
            "--model-url",
            help="triton://HOST:8001/NAME | triton+http://HOST:8000/NAME: run the model on Triton "
            "[default: $PRODMATCH_MODEL_URL or in process]",
        ),
    ] = None,
) -> None:
    """Where the catalog lives and where its model runs, for every command (flags win over the environment)."""
    given = (("metadata_url", metadata_url), ("vectors_url", vectors_url), ("model_url", model_url))
    ctx.obj = {key: value for key, value in given if value}


def settings_for(ctx: typer.Context, data_dir: Path | None = None) -> Settings:
    """Settings from the environment, with the command line's data dir and store URLs on top."""
    overrides = dict(ctx.find_root().obj or {})
    if data_dir:
        overrides["data_dir"] = data_dir
    return Settings(**overrides)


def photos_in(folder: Path | None) -> list[Path]:
    """The JPEG/PNG/WebP files in FOLDER (recursively), sorted; none for no folder."""
    if folder is None:
        return []
    suffixes = {".jpg", ".jpeg", ".png", ".webp"}
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in suffixes)


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, default=str))


@contextmanager
def progress_bar(label: str) -> Iterator[Any]:
    columns = [
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed} rows · {task.fields[images]} images · {task.fields[rate]} rows/s"),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=err, transient=False) as progress:
        task = progress.add_task(label, total=None, images=0, rate="-")

        def advance(rows: int, images: int) -> None:
            state = progress.tasks[task]
            done = state.completed + rows
            elapsed = state.elapsed or 1e-9
            progress.update(task, completed=done, images=state.fields["images"] + images, rate=f"{done / elapsed:.1f}")

        yield advance


@app.command()
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
    as_json: JsonOption = False,
) -> None:
    """Add or update the products of CATALOG (idempotent; unchanged products are not re-embedded)."""
    from prodmatch.catalog.ingest import CatalogIngester, ColumnOptions
    from prodmatch.eval.calibrate import calibrate_decisions
    from prodmatch.matching.service import MatchService
    from prodmatch.stores.datadir import DataDir

    settings = settings_for(ctx, data_dir)
    err.print(f"[cyan]ingesting into the {settings.location().describe()}")
    datadir = DataDir.open(settings, model=model, create=True, announce=lambda m: err.print(f"[cyan]{m}"))
    columns = ColumnOptions(id_col, name_col, image_col, text_cols.split(",") if text_cols else None)
    try:
        with progress_bar(f"ingesting {catalog.name}") as advance:
            report = CatalogIngester(datadir).ingest_file(catalog, columns, images_root, advance)
        if report.added or report.updated:
            err.print(describe_calibrations(calibrate_decisions(MatchService(datadir))))
    finally:
        datadir.close()
    if as_json:
        print_json(report.as_dict())
        return
    out.print(
        f"[green]added {report.added}[/] · updated {report.updated} · unchanged {report.unchanged} · "
        f"[red]rejected {len(report.rejected)}[/] · {report.images} images embedded in {report.seconds:.1f}s · "
        f"{report.duplicate_groups} duplicate-listing groups"
    )
    for rejection in report.rejected:
        out.print(
            f"  line {rejection.line}" + (f" (id {rejection.id})" if rejection.id else "") + f": {rejection.reason}"
        )


def describe_calibrations(calibrations: dict[str, Any]) -> str:
    if not calibrations:
        return "match decision: too few products to calibrate"
    parts = [
        f"{kind} (balanced accuracy {c.balanced_accuracy:.2f} on {c.positives}+{c.negatives} queries)"
        for kind, c in calibrations.items()
    ]
    return "match decision calibrated: " + ", ".join(parts)


@app.command()
def calibrate(ctx: typer.Context, data_dir: DataDirOption = None) -> None:
    """Re-fit the match / no-match decision on the catalog (ingest does this after changes)."""
    from prodmatch.eval.calibrate import calibrate_decisions
    from prodmatch.matching.service import MatchService
    from prodmatch.stores.datadir import DataDir

    datadir = DataDir.open(settings_for(ctx, data_dir))
    try:
        out.print(describe_calibrations(calibrate_decisions(MatchService(datadir))))
    finally:
        datadir.close()


@app.command()
def match(
    ctx: typer.Context,
    image: Annotated[Path | None, typer.Option("--image", help="query photo")] = None,
    text: Annotated[str | None, typer.Option("--text", help="query description")] = None,
    data_dir: DataDirOption = None,
    top_k: Annotated[int, typer.Option("--top-k", help="number of products")] = 10,
    filters: FilterOption = None,
    as_json: JsonOption = False,
) -> None:
    """Find the catalog products matching a photo or a description."""
    from prodmatch.matching.service import MatchService
    from prodmatch.stores.datadir import DataDir
    from prodmatch.stores.filters import parse_filters

    if (image is None) == (text is None):
        raise typer.BadParameter("give exactly one of --image or --text")
    settings = settings_for(ctx, data_dir)
    parsed = parse_filters(filters)
    datadir = DataDir.open(settings)
    try:
        service = MatchService(datadir)
        service.warm()  # took_ms then measures the query, not loading the model
        if image is not None:
            result = service.match_image(service.decode(image), top_k, parsed)
        else:
            result = service.match_text(text or "", top_k, parsed)
        decision = service.decision("image" if image is not None else "text", result)
    finally:
        datadir.close()
    if as_json:
        print_json(result.as_dict())
        return
    verdict = (
        "no calibration"
        if decision is None
        else (f"{'MATCH' if decision.is_match else 'no match'} (confidence {decision.confidence:.2f})")
    )
    table = Table(title=f"{len(result.matches)} matches · {verdict} · {result.model} · {result.took_ms:.1f} ms")
    for column in ("rank", "id", "score", "name"):
        table.add_column(column)
    for rank, found in enumerate(result.matches, start=1):
        table.add_row(str(rank), found.id, f"{found.score:.4f}", str(found.product.get("name") or ""))
    out.print(table)


@app.command()
def stats(ctx: typer.Context, data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Counts, model, index types, duplicate listings and sizes on disk."""
    from prodmatch.stores.datadir import DataDir

    datadir = DataDir.open(settings_for(ctx, data_dir))
    try:
        summary = {
            "data_dir": str(datadir.path),
            "products": datadir.store.count(),
            "model": datadir.record.model_dump(),
            "indexes": {
                space: {"kind": datadir.index(space).kind, "vectors": len(datadir.index(space))}
                for space in datadir.record.spaces
            },
            "duplicate_groups": datadir.store.duplicate_groups(),
            "repairs": [r.model_dump() for r in datadir.repairs],
            "disk_bytes": datadir.disk_usage(),
        }
    finally:
        datadir.close()
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
    from prodmatch.stores.datadir import DataDir
    from prodmatch.stores.filters import check_keys, parse_filters

    datadir = DataDir.open(settings_for(ctx, data_dir))
    try:
        parsed = parse_filters(filters)
        check_keys(parsed, datadir.store.attribute_keys())
        items = datadir.store.page(offset, limit, parsed)
        total = datadir.store.count(parsed)
    finally:
        datadir.close()
    if as_json:
        print_json({"total": total, "items": [{"id": p.id, **p.as_dict()} for p in items]})
        return
    table = Table(title=f"{total} products")
    table.add_column("id")
    table.add_column("name")
    for product in items:
        table.add_row(product.id, product.name or "")
    out.print(table)


@products_app.command("show")
def products_show(ctx: typer.Context, product_id: str, data_dir: DataDirOption = None) -> None:
    """Show one product as JSON."""
    from prodmatch.errors import NotFoundError
    from prodmatch.stores.datadir import DataDir

    datadir = DataDir.open(settings_for(ctx, data_dir))
    try:
        found = datadir.store.get([product_id]).get(product_id)
    finally:
        datadir.close()
    if found is None:
        raise NotFoundError(f"no product with id {product_id!r}")
    print_json({"id": found.id, **found.as_dict()})


@products_app.command("delete")
def products_delete(ctx: typer.Context, product_id: str, data_dir: DataDirOption = None) -> None:
    """Delete one product and its vectors."""
    from prodmatch.errors import NotFoundError
    from prodmatch.stores.datadir import DataDir

    datadir = DataDir.open(settings_for(ctx, data_dir))
    try:
        if not datadir.store.get([product_id]):
            raise NotFoundError(f"no product with id {product_id!r}")
        datadir.delete(product_id)
        datadir.save()
    finally:
        datadir.close()
    out.print(f"deleted {product_id}")


@app.command("eval")
def evaluate(
    ctx: typer.Context,
    catalog: Annotated[Path, typer.Argument(help="catalog to evaluate on (a temporary index is built)")],
    model: ModelOption = None,
    images_root: ImagesRoot = None,
    id_col: IdCol = None,
    name_col: NameCol = None,
    image_col: ImageCol = None,
    text_cols: TextCols = None,
    queries: Annotated[str, typer.Option("--queries", help="images | text | both")] = "both",
    seed: Annotated[int, typer.Option(help="seed for the query alterations")] = 0,
    holdout: Annotated[
        float, typer.Option(min=0.0, max=0.9, help="share of products held out to test the match decision")
    ] = 0.2,
    as_json: JsonOption = False,
) -> None:
    """Measure retrieval quality: Recall@1, Recall@5 and MRR for altered-photo and attribute-text queries."""
    from prodmatch.catalog.ingest import ColumnOptions
    from prodmatch.eval.quality import QUERY_KINDS, evaluate_catalog

    if queries not in (*QUERY_KINDS, "both"):
        raise typer.BadParameter(f"--queries must be one of: {', '.join(QUERY_KINDS)}, both")
    kinds = list(QUERY_KINDS) if queries == "both" else [queries]
    columns = ColumnOptions(id_col, name_col, image_col, text_cols.split(",") if text_cols else None)
    report = evaluate_catalog(
        settings_for(ctx), catalog, columns, images_root, model, kinds, seed, lambda m: err.print(f"[cyan]{m}"), holdout
    )
    if as_json:
        print_json(report)
        return
    table = Table(title=f"retrieval quality · {report['model']} · {report['products']} products")
    for column in ("queries", "n", "Recall@1", "Recall@5", "MRR"):
        table.add_column(column)
    for kind, metrics in report["metrics"].items():
        table.add_row(
            kind, str(metrics["n"]), f"{metrics['recall@1']:.3f}", f"{metrics['recall@5']:.3f}", f"{metrics['mrr']:.3f}"
        )
    for kind, figures in report["decision"].items():
        out.print(
            f"match decision ({kind}, {holdout:.0%} of products held out): precision {figures['precision']:.3f}, "
            f"recall {figures['recall']:.3f}, false matches on held-out photos "
            f"{figures['false_match_rate_held_out']:.3f}"
        )
    out.print(table)


@app.command()
def serve(
    ctx: typer.Context,
    data_dir: DataDirOption = None,
    host: Annotated[str | None, typer.Option(help="address to listen on [default: 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="port [default: 8000]")] = None,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs) for a data dir."""
    try:
        import uvicorn

        from prodmatch.api.app import create_app
    except ImportError as exc:
        hint = f"serving needs the serve extra: pip install 'prodmatch[serve]' (missing {exc.name})"
        raise ModelUnavailableError(hint) from exc
    from prodmatch.stores.datadir import DataDir

    settings = settings_for(ctx, data_dir)
    try:
        _check_catalog(DataDir.open(settings))
    except Exception as exc:
        if (reason := unavailable_reason(exc)) is None:
            raise
        err.print(f"[yellow]warning:[/] {reason}; serving anyway, /ready answers 503 until it is reachable")
    uvicorn.run(
        create_app(settings), host=host or settings.serve.host, port=port or settings.serve.port, log_level="info"
    )


def _check_catalog(datadir: Any) -> None:
    """A missing data dir, or a Triton serving another bundle, is a clear error now, not a failed app start."""
    try:
        if datadir.settings.model_url:
            datadir.embedder()
    finally:
        datadir.close()


log_app = typer.Typer(help="The query log.", no_args_is_help=True)
app.add_typer(log_app, name="log")


@log_app.command("tail")
def log_tail(
    ctx: typer.Context,
    data_dir: DataDirOption = None,
    lines: Annotated[int, typer.Option("-n", "--lines", min=1, max=10_000)] = 20,
    as_json: JsonOption = False,
) -> None:
    """The most recent answered match requests."""
    from dataclasses import asdict

    from prodmatch.stores.datadir import DataDir

    datadir = DataDir.open(settings_for(ctx, data_dir))
    try:
        entries = datadir.store.recent_queries(lines)
    finally:
        datadir.close()
    if as_json:
        print_json([asdict(entry) for entry in entries])
        return
    table = Table(title=f"last {len(entries)} queries")
    for column in ("at", "modality", "top ids", "top score", "ms", "match"):
        table.add_column(column)
    for entry in entries:
        verdict = "-" if entry.is_match is None else ("yes" if entry.is_match else "no")
        top = f"{entry.top_scores[0]:.3f}" if entry.top_scores else "-"
        table.add_row(
            entry.at.isoformat(timespec="seconds"),
            entry.modality,
            ", ".join(entry.top_ids[:3]),
            top,
            f"{entry.took_ms:.1f}",
            verdict,
        )
    out.print(table)


@model_app.command("list")
def model_list(as_json: JsonOption = False) -> None:
    """Known models, whether each can be used on this machine, and why not."""
    from prodmatch.models.registry import load_registry
    from prodmatch.models.weights import availability

    settings = Settings()
    rows: list[dict[str, Any]] = []
    for spec in load_registry().values():
        status = availability(spec, settings.clip_weights)
        rows.append(
            {
                "name": spec.name,
                "available": status.available,
                "reason": status.reason,
                "for_matching": spec.for_matching,
                "shared_space": spec.shared_space,
                "dims": {"image": spec.image.dims, "text": spec.text.dims},
                "default_precision": spec.default_precision,
                "description": spec.description,
            }
        )
    if as_json:
        print_json(rows)
        return
    table = Table(title="models")
    for column in ("name", "available", "spaces", "dims", "notes"):
        table.add_column(column, overflow="fold")
    for row in rows:
        label = row["name"] if row["for_matching"] else f"{row['name']} [yellow](TEST ONLY: random weights)[/]"
        spaces = "shared image+text" if row["shared_space"] else "image->image, text->text"
        dims = f"{row['dims']['image']} / {row['dims']['text']}"
        table.add_row(label, "[green]yes[/]" if row["available"] else "[red]no[/]", spaces, dims, row["reason"])
    out.print(table)


@model_app.command("export")
def model_export(
    name: Annotated[str, typer.Argument(help="registry model name, or a bundle folder (triton/tensorrt)")],
    out_dir: Annotated[Path, typer.Option("--out", help="bundle folder, or Triton model repository, to write")],
    precision: Annotated[str, typer.Option("--precision", help="fp32 | fp16 | int8")] = "fp32",
    export_format: Annotated[
        str, typer.Option("--format", help="bundle | triton (ONNX models for Triton) | tensorrt (runs trtexec)")
    ] = "bundle",
    max_batch: Annotated[int, typer.Option("--max-batch", help="Triton: largest batch per model run")] = 32,
    backend: Annotated[
        str, typer.Option("--backend", help="Triton: onnxruntime | python (for Triton builds without ORT)")
    ] = "onnxruntime",
    instances: Annotated[int, typer.Option("--instances", help="Triton: model instances per device")] = 1,
    device: Annotated[str, typer.Option("--device", help="Triton: auto | cpu | gpu")] = "auto",
    triton_name: Annotated[
        str | None, typer.Option("--triton-name", help="Triton: model name prefix [default: the bundle's name]")
    ] = None,
    trtexec: Annotated[Path | None, typer.Option("--trtexec", help="TensorRT: trtexec path [default: PATH]")] = None,
    calibration_cache: Annotated[
        Path | None, typer.Option("--calibration-cache", help="TensorRT int8: calibration cache file")
    ] = None,
    calibration_images: CalibrationOption = None,
) -> None:
    """Export NAME as an ONNX bundle (manifest, image and text graphs, tokenizer), or as Triton models."""
    from prodmatch.models.bench import parse_precisions
    from prodmatch.models.factory import ensure_bundle

    (chosen,) = parse_precisions(precision)
    settings = Settings()
    if export_format == "bundle":
        bundle = _export_bundle(name, chosen, out_dir, settings, photos_in(calibration_images))
        out.print(f"wrote {bundle.folder} ({bundle.manifest.precision}, fingerprint {bundle.manifest.fingerprint})")
        return
    if export_format not in ("triton", "tensorrt"):
        raise typer.BadParameter(f"unknown format {export_format!r}; valid: bundle, triton, tensorrt")
    from pydantic import ValidationError

    from prodmatch.models.triton.repository import RepositoryOptions

    try:
        options = RepositoryOptions.model_validate(
            {"backend": backend, "max_batch": max_batch, "instances": instances, "device": device}
        )
    except ValidationError as exc:
        raise typer.BadParameter("; ".join(f"--{e['loc'][0]}: {e['msg']}" for e in exc.errors())) from exc
    if export_format == "triton":
        from prodmatch.models.triton.repository import write_triton_repository

        bundle = ensure_bundle(name, settings, chosen, photos_in(calibration_images))
        folders = write_triton_repository(bundle, out_dir, options, triton_name)
    else:
        from prodmatch.models.triton.tensorrt import build_tensorrt_repository

        bundle = ensure_bundle(name, settings, "fp32")  # TensorRT lowers precision itself, from fp32
        folders = build_tensorrt_repository(bundle, out_dir, options, chosen, triton_name, trtexec, calibration_cache)
    for folder in folders:
        out.print(f"wrote {folder} (from {bundle.folder}, fingerprint {bundle.manifest.fingerprint})")


def _export_bundle(name: str, precision: Any, out_dir: Path, settings: Settings, photos: list[Path]) -> Any:
    from prodmatch.models.export import export_bundle
    from prodmatch.models.registry import get_spec
    from prodmatch.models.weights import availability

    spec = get_spec(name)
    status = availability(spec, settings.clip_weights, try_hub=True)
    if not status.available:
        raise ModelUnavailableError(f"cannot export {name}: {status.reason}")
    return export_bundle(spec, precision, out_dir, settings.clip_weights, photos)


@model_app.command("bench")
def model_bench(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="registry model name or bundle folder")],
    batch: Annotated[str, typer.Option("--batch", help="batch sizes, comma-separated")] = "1,8,32",
    precisions: Annotated[str, typer.Option("--precisions", help="for a model name")] = "fp32,fp16,int8",
    backends: Annotated[
        str, typer.Option("--backends", help="onnx,torch,triton (triton: the bundle --model-url serves)")
    ] = "onnx,torch",
    repeats: Annotated[int, typer.Option(min=1)] = 5,
    decode_image: Annotated[Path | None, typer.Option("--decode-image", help="JPEG for the decode timing")] = None,
    calibration_images: CalibrationOption = None,
    as_json: JsonOption = False,
) -> None:
    """Images/s and ms per text for each backend and precision, on this machine."""
    from prodmatch.models.bench import parse_precisions, run_bench
    from prodmatch.models.factory import BACKENDS

    chosen_backends = [b.strip() for b in backends.split(",") if b.strip()]
    if unknown := set(chosen_backends) - set(BACKENDS):
        raise typer.BadParameter(f"unknown backends {sorted(unknown)}; valid: {', '.join(BACKENDS)}")
    sizes = [int(size) for size in batch.split(",")]
    report = run_bench(
        target,
        settings_for(ctx),
        sizes,
        parse_precisions(precisions),
        chosen_backends,  # type: ignore[arg-type]
        repeats,
        decode_image,
        photos_in(calibration_images),
    )
    if as_json:
        print_json(report)
        return
    table = Table(title=f"{report['model']} on {report['machine']['cpu']} ({report['machine']['cores']} cores)")
    for column in ("backend", "precision", "tower", "batch", "ms/item", "items/s"):
        table.add_column(column, justify="right")
    for row in report["rows"]:
        table.add_row(
            row["backend"],
            row["precision"],
            row["tower"],
            str(row["batch"]),
            f"{row['ms_per_item']:.2f}",
            f"{row['items_per_s']:.1f}",
        )
    out.print(table)
    out.print(
        f"JPEG decode {report['decode']['width']}x{report['decode']['height']}: "
        f"full {report['decode']['full_decode_ms']} ms, draft {report['decode']['draft_decode_ms']} ms"
    )


@model_app.command("parity")
def model_parity(
    name: Annotated[str, typer.Argument(help="registry model name")],
    photos: Annotated[Path, typer.Option("--photos", help="folder of photos to compare on")],
    precisions: Annotated[str, typer.Option("--precisions")] = "fp32,fp16,int8",
    calibration_images: CalibrationOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cosine to the PyTorch reference and top-1 agreement with fp32, per precision, on your photos."""
    from prodmatch.models.bench import parse_precisions
    from prodmatch.models.parity import parity_report

    report = parity_report(
        name,
        Settings(),
        parse_precisions(precisions),
        photos_in(photos),
        calibration_images=photos_in(calibration_images),
    )
    if as_json:
        print_json(report)
        return
    table = Table(title=f"{report['model']}: {report['photos']} photos, {report['texts']} texts vs PyTorch fp32")
    columns = (
        "precision",
        "image_cosine_min",
        "image_cosine_mean",
        "text_cosine_min",
        "text_cosine_mean",
        "top1_leave_one_out",
        "top1_customer_photos",
    )
    for column in columns:
        table.add_column(column.replace("_", " "), justify="right")
    for row in report["rows"]:
        table.add_row(*(str(row[column]) for column in columns))
    out.print(table)


bench_app = typer.Typer(help="Benchmarks against a running service.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


@bench_app.command("serve")
def bench_serve_command(
    url: Annotated[str, typer.Option(help="a prodmatch server of yours")] = "http://127.0.0.1:8000",
    modes: Annotated[str, typer.Option("--modes", help="image,text")] = "image,text",
    clients: Annotated[str, typer.Option("--clients", help="concurrent clients, comma-separated")] = "1,32",
    requests: Annotated[int, typer.Option("--requests", min=1, max=100_000, help="per run")] = 300,
    photos: Annotated[Path | None, typer.Option("--photos", help="folder of query photos")] = None,
    as_json: JsonOption = False,
) -> None:
    """p50/p95/p99 latency and throughput with N concurrent clients (distinct queries: no cache hits)."""
    from prodmatch.bench.serve import bench_serve

    reports = bench_serve(
        url, [m.strip() for m in modes.split(",")], [int(c) for c in clients.split(",")], requests, photos_in(photos)
    )
    if as_json:
        print_json(reports)
        return
    table = Table(title=f"load test · {url}")
    for column in ("mode", "clients", "requests", "errors", "req/s", "p50 ms", "p95 ms", "p99 ms"):
        table.add_column(column, justify="right")
    for r in reports:
        table.add_row(
            r["mode"],
            str(r["clients"]),
            str(r["requests"]),
            str(r["errors"]),
            str(r["throughput_per_s"]),
            str(r["p50_ms"]),
            str(r["p95_ms"]),
            str(r["p99_ms"]),
        )
    out.print(table)


def main() -> None:
    """Entry point: user-facing errors print one line and exit 2, never a traceback."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run finally-blocks (index saves) on kill
    try:
        app(standalone_mode=False)
    except ProdmatchError as exc:
        err.print(f"[red]error:[/] {exc}")
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]: what was written is consistent; run the same command again to resume")
        sys.exit(130)
    except typer.Abort:
        sys.exit(1)
    except typer.TyperException as exc:  # usage errors: typer prints them like click does
        show = getattr(exc, "show", None)
        if show is None:
            raise
        show()
        sys.exit(getattr(exc, "exit_code", 2))
    except Exception as exc:
        if (reason := unavailable_reason(exc)) is None:
            raise
        err.print(f"[red]error:[/] {reason}; start it (or fix PRODMATCH_METADATA_URL / PRODMATCH_VECTORS_URL)")
        sys.exit(2)
