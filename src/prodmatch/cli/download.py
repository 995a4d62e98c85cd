"""`prodmatch download`: fetch a catalog's image URLs into the data dir, and the progress and metrics output that
`prodmatch ingest` shares when its catalog lists URLs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from prometheus_client import CollectorRegistry, write_to_textfile
from rich.progress import Progress, TaskID

from prodmatch.application.ingesting import download_images, engine_downloader
from prodmatch.catalog.download import DownloadSummary
from prodmatch.catalog.download import Progress as UrlProgress
from prodmatch.catalog.download import ProgressCallback as DownloadProgress
from prodmatch.catalog.download_metrics import DownloadMetrics
from prodmatch.cli.common import (
    DataDirOption,
    IdCol,
    ImageCol,
    JsonOption,
    NameCol,
    TextCols,
    column_options,
    out,
    print_json,
    progress_display,
    settings_for,
)

AllowHostOption = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-host",
        help="a private/loopback address (CIDR) or host name images may come from anyway (repeatable); "
        "also PRODMATCH_DOWNLOAD__ALLOW_HOSTS",
    ),
]
EngineOption = Annotated[
    str, typer.Option("--engine", help="where the work runs: local (this process), or ray (a local Ray or a cluster)")
]
RayAddressOption = Annotated[
    str | None, typer.Option("--ray-address", help="Ray cluster: auto or HOST:PORT [default: a local Ray]")
]
MetricsFileOption = Annotated[
    Path | None,
    typer.Option("--metrics-file", help="write Prometheus counters here (node-exporter textfile format)"),
]


def download(
    ctx: typer.Context,
    catalog: Annotated[Path, typer.Argument(help="CSV, JSONL or JSON-array catalog whose image column has URLs")],
    data_dir: DataDirOption = None,
    allow_host: AllowHostOption = None,
    id_col: IdCol = None,
    name_col: NameCol = None,
    image_col: ImageCol = None,
    text_cols: TextCols = None,
    metrics_file: MetricsFileOption = None,
    engine: EngineOption = "local",
    ray_address: RayAddressOption = None,
    shards: Annotated[
        int | None, typer.Option("--shards", min=1, help="with --engine ray: Ray tasks [default: the cluster's CPUs]")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Download the catalog's image URLs into DATA_DIR/images (resumable: a rerun fetches only what is missing or
    failed transiently); `prodmatch ingest` then uses them. Refused and failed URLs are listed by kind. With
    --engine ray the URLs are split into shards downloaded by Ray tasks (on a cluster, DATA_DIR must be shared
    storage every node sees at the same path); the URLs are then fetched in Ray's worker processes, so no per-URL
    progress is shown, only the summary at the end."""
    settings = settings_for(ctx, data_dir)
    columns = column_options(id_col, name_col, image_col, text_cols)
    folder = settings.location().folder
    downloader = engine_downloader(engine, ray_address, shards)
    with progress_display() as progress, download_feedback(progress, catalog.name, metrics_file) as on_progress:
        summary = download_images(settings, folder, catalog, columns, allow_host, on_progress, downloader)
    if as_json:
        print_json(summary.as_dict() if summary else {"total": 0})
    elif summary is None:
        out.print("the catalog lists no image URL: nothing to download")
    else:
        print_download(summary)


@contextmanager
def download_feedback(progress: Progress, label: str, metrics_file: Path | None) -> Iterator[DownloadProgress]:
    """A progress callback that drives a task on PROGRESS (URLs/s, MB, failures by kind; added at the first URL,
    so a catalog without URLs shows none) and Prometheus counters, written to METRICS_FILE at the end, even when
    interrupted: a nightly job's partial run is still visible."""
    registry = CollectorRegistry()
    metrics = DownloadMetrics(registry)
    failures: Counter[str] = Counter()
    tasks: list[TaskID] = []
    megabytes = 0.0

    def on_progress(update: UrlProgress) -> None:
        nonlocal megabytes
        metrics(update)
        record = update.record
        if record.error_kind:
            failures[f"{record.status}:{record.error_kind}"] += 1
        if not tasks:
            tasks.append(progress.add_task(f"downloading {label}", total=update.total, info=""))
        megabytes += record.size_bytes / 1e6 if update.fetched else 0.0
        rate = update.done / (progress.tasks[tasks[0]].elapsed or 1e-9)
        shown = ", ".join(f"{kind} {n}" for kind, n in failures.most_common(3)) or "no failures"
        info = f"{update.done}/{update.total or '?'} URLs · {rate:.1f}/s · {megabytes:.1f} MB · "
        progress.update(tasks[0], completed=update.done, info=info + (f"[red]{shown}[/]" if failures else shown))

    try:
        yield on_progress
    finally:
        if metrics_file is not None:
            write_to_textfile(str(metrics_file), registry)


def print_download(summary: DownloadSummary) -> None:
    statuses = " · ".join(f"{status} {count}" for status, count in summary.by_status.items() if count)
    latency = f"p50 {summary.latency_p50_ms:.0f} ms, p95 {summary.latency_p95_ms:.0f} ms" if summary.fetched else "-"
    out.print(
        f"[green]{summary.total} image URLs[/]: {statuses} · success {summary.success_ratio:.1%} · "
        f"fetched {summary.fetched} ({summary.downloaded_bytes / 1e6:.1f} MB, {latency}), "
        f"{summary.skipped} already settled by an earlier run"
    )
    if summary.by_error_kind:
        out.print("failures by kind: " + ", ".join(f"{k} {n}" for k, n in summary.by_error_kind.items()))
