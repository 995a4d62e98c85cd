"""`prodmatch model ...`: list the known models, export bundles (and Triton / TensorRT repositories), benchmark them,
compare their precisions with the PyTorch reference."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from prodmatch.cli.common import CalibrationOption, JsonOption, out, photos_in, print_json, settings_for, table_rows
from prodmatch.config import Settings
from prodmatch.errors import ModelUnavailableError
from prodmatch.models.bundle import Bundle
from prodmatch.models.registry import Precision, parse_precisions

model_app = typer.Typer(help="Embedding models: list, export bundles, benchmark.", no_args_is_help=True)
EXPORT_FORMATS = ("bundle", "triton", "tensorrt")


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
    table_rows("models", ["name", "available", "spaces", "dims", "notes"], [_model_row(row) for row in rows])


def _model_row(row: dict[str, Any]) -> list[str]:
    label = row["name"] if row["for_matching"] else f"{row['name']} [yellow](TEST ONLY: random weights)[/]"
    spaces = "shared image+text" if row["shared_space"] else "image->image, text->text"
    available = "[green]yes[/]" if row["available"] else "[red]no[/]"
    return [label, available, spaces, f"{row['dims']['image']} / {row['dims']['text']}", row["reason"]]


@model_app.command("export")
def model_export(
    name: Annotated[str, typer.Argument(help="registry model name, or a bundle folder (triton/tensorrt)")],
    out_dir: Annotated[Path, typer.Option("--out", help="bundle folder, or Triton model repository, to write")],
    precision: Annotated[str, typer.Option("--precision", help="fp32 | fp16 | int8")] = "fp32",
    export_format: Annotated[
        str, typer.Option("--format", help="bundle | triton | tensorrt (runs trtexec)")
    ] = "bundle",
    max_batch: Annotated[int, typer.Option("--max-batch", help="Triton: largest batch per model run")] = 32,
    backend: Annotated[str, typer.Option("--backend", help="Triton: onnxruntime | python")] = "onnxruntime",
    instances: Annotated[int, typer.Option("--instances", help="Triton: model instances per device")] = 1,
    device: Annotated[str, typer.Option("--device", help="Triton: auto | cpu | gpu")] = "auto",
    triton_name: Annotated[str | None, typer.Option("--triton-name", help="Triton: model name prefix")] = None,
    trtexec: Annotated[Path | None, typer.Option("--trtexec", help="TensorRT: trtexec path [default: PATH]")] = None,
    calibration_cache: Annotated[Path | None, typer.Option("--calibration-cache", help="TensorRT int8 cache")] = None,
    calibration_images: CalibrationOption = None,
) -> None:
    """Export NAME as an ONNX bundle (manifest, image and text graphs, tokenizer), or as Triton models."""
    (chosen,) = parse_precisions(precision)
    photos = photos_in(calibration_images)
    if export_format == "bundle":
        bundle = _export_bundle(name, chosen, out_dir, Settings(), photos)
        out.print(f"wrote {bundle.folder} ({bundle.manifest.precision}, fingerprint {bundle.manifest.fingerprint})")
        return
    if export_format not in EXPORT_FORMATS:
        raise typer.BadParameter(f"unknown format {export_format!r}; valid: {', '.join(EXPORT_FORMATS)}")
    options = _repository_options(backend, max_batch, instances, device)
    if export_format == "triton":
        bundle, folders = _export_triton(name, chosen, out_dir, options, triton_name, photos)
    else:
        bundle, folders = _export_tensorrt(name, chosen, out_dir, options, triton_name, trtexec, calibration_cache)
    for folder in folders:
        out.print(f"wrote {folder} (from {bundle.folder}, fingerprint {bundle.manifest.fingerprint})")


def _repository_options(backend: str, max_batch: int, instances: int, device: str) -> Any:
    from prodmatch.models.triton.repository import RepositoryOptions

    given = {"backend": backend, "max_batch": max_batch, "instances": instances, "device": device}
    try:
        return RepositoryOptions.model_validate(given)
    except ValidationError as exc:
        raise typer.BadParameter("; ".join(f"--{e['loc'][0]}: {e['msg']}" for e in exc.errors())) from exc


def _export_triton(
    name: str, precision: Precision, out_dir: Path, options: Any, prefix: str | None, photos: list[Path]
) -> tuple[Bundle, list[Path]]:
    from prodmatch.models.factory import ensure_bundle
    from prodmatch.models.triton.repository import write_triton_repository

    bundle = ensure_bundle(name, Settings(), precision, photos)
    return bundle, write_triton_repository(bundle, out_dir, options, prefix)


def _export_tensorrt(
    name: str,
    precision: Precision,
    out_dir: Path,
    options: Any,
    prefix: str | None,
    trtexec: Path | None,
    calibration_cache: Path | None,
) -> tuple[Bundle, list[Path]]:
    from prodmatch.models.factory import ensure_bundle
    from prodmatch.models.triton.tensorrt import build_tensorrt_repository

    bundle = ensure_bundle(name, Settings(), "fp32")  # TensorRT lowers precision itself, from fp32
    return bundle, build_tensorrt_repository(bundle, out_dir, options, precision, prefix, trtexec, calibration_cache)


def _export_bundle(name: str, precision: Precision, out_dir: Path, settings: Settings, photos: list[Path]) -> Bundle:
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
    backends: Annotated[str, typer.Option("--backends", help="onnx,torch,triton (triton: --model-url)")] = "onnx,torch",
    repeats: Annotated[int, typer.Option(min=1)] = 5,
    decode_image: Annotated[Path | None, typer.Option("--decode-image", help="JPEG for the decode timing")] = None,
    calibration_images: CalibrationOption = None,
    as_json: JsonOption = False,
) -> None:
    """Images/s and ms per text for each backend and precision, on this machine."""
    from prodmatch.bench.models import BenchPlan, run_bench
    from prodmatch.models.factory import BACKENDS

    chosen = [b.strip() for b in backends.split(",") if b.strip()]
    if unknown := set(chosen) - set(BACKENDS):
        raise typer.BadParameter(f"unknown backends {sorted(unknown)}; valid: {', '.join(BACKENDS)}")
    plan = BenchPlan([int(size) for size in batch.split(",")], parse_precisions(precisions), chosen, repeats)  # type: ignore[arg-type]
    report = run_bench(target, settings_for(ctx), plan, decode_image, photos_in(calibration_images))
    if as_json:
        print_json(report)
        return
    _print_bench(report)


def _print_bench(report: dict[str, Any]) -> None:
    keys = ("backend", "precision", "tower", "batch")
    rows = [
        [str(row[k]) for k in keys] + [f"{row['ms_per_item']:.2f}", f"{row['items_per_s']:.1f}"]
        for row in report["rows"]
    ]
    title = f"{report['model']} on {report['machine']['cpu']} ({report['machine']['cores']} cores)"
    table_rows(title, [*keys, "ms/item", "items/s"], rows, justify="right")
    decode = report["decode"]
    out.print(
        f"JPEG decode {decode['width']}x{decode['height']}: full {decode['full_decode_ms']} ms, "
        f"draft {decode['draft_decode_ms']} ms"
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
    from prodmatch.bench.parity import PARITY_COLUMNS, parity_report

    chosen = parse_precisions(precisions)
    report = parity_report(
        name, Settings(), chosen, photos_in(photos), calibration_images=photos_in(calibration_images)
    )
    if as_json:
        print_json(report)
        return
    title = f"{report['model']}: {report['photos']} photos, {report['texts']} texts vs PyTorch fp32"
    columns = [column.replace("_", " ") for column in PARITY_COLUMNS]
    rows = [[str(row[column]) for column in PARITY_COLUMNS] for row in report["rows"]]
    table_rows(title, columns, rows, justify="right")
