"""`prodmatch serve` (the HTTP API and web UI) and `prodmatch bench serve` (a load test of a running server)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from prodmatch.cli.common import DataDirOption, JsonOption, err, photos_in, print_json, settings_for, table_rows
from prodmatch.composition import open_catalog
from prodmatch.config import LOOPBACK_HOSTS, Settings
from prodmatch.errors import ModelUnavailableError, ProdmatchError
from prodmatch.stores.availability import unavailable_reason

bench_app = typer.Typer(help="Benchmarks against a running service.", no_args_is_help=True)


def serve(
    ctx: typer.Context,
    data_dir: DataDirOption = None,
    host: Annotated[str | None, typer.Option(help="address to listen on [default: 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="port [default: 8000]")] = None,
    insecure_no_auth: Annotated[
        bool, typer.Option("--insecure-no-auth", help="listen beyond loopback without API keys (not recommended)")
    ] = False,
    compat: Annotated[
        bool, typer.Option("--compat", help="also serve the seed designs' routes (/match-product, /search, ...)")
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="server processes sharing the catalog read-only (catalog writes need 1) [default: 1]"),
    ] = None,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs) for a catalog."""
    try:
        import uvicorn

        from prodmatch.api.app import create_app, serve_settings_env
        from prodmatch.api.observability import configure_logging
    except ImportError as exc:
        hint = f"serving needs the serve extra: pip install 'prodmatch[serve]' (missing {exc.name})"
        raise ModelUnavailableError(hint) from exc
    settings = _serve_settings(settings_for(ctx, data_dir), host, port, insecure_no_auth, compat, workers)
    serve = settings.serve
    err.print(
        f"[cyan]serving the {settings.location().describe()} on {serve.host}:{serve.port}, {serve.workers} worker(s)"
    )
    _check_catalog(settings)
    configure_logging(serve.log_level, serve.log_json)
    if serve.workers == 1:
        uvicorn.run(create_app(settings), host=serve.host, port=serve.port, access_log=False, log_config=None)
        return
    # Worker processes import the app factory by name and read the settings from the environment they inherit.
    os.environ.update(serve_settings_env(settings))
    factory = "prodmatch.api.app:create_app_from_environment"
    uvicorn.run(
        factory,
        factory=True,
        workers=serve.workers,
        host=serve.host,
        port=serve.port,
        access_log=False,
        log_config=None,
    )


def _serve_settings(
    settings: Settings,
    host: str | None,
    port: int | None,
    insecure: bool,
    compat: bool = False,
    workers: int | None = None,
) -> Settings:
    serve = settings.serve.model_copy(
        update={
            "host": host or settings.serve.host,
            "port": port or settings.serve.port,
            "insecure_no_auth": insecure or settings.serve.insecure_no_auth,
            "compat_routes": compat or settings.serve.compat_routes,
            "workers": workers or settings.serve.workers,
        }
    )
    matching, runtime = settings.matching, settings.runtime
    if serve.workers > 1:  # a learned photo would change one worker's copy of the index only
        matching = matching.model_copy(update={"learn_from_feedback": False})
    if serve.workers > 1 and runtime.intra_op_threads is None:  # N models with all cores each would oversubscribe
        runtime = runtime.model_copy(update={"intra_op_threads": max(1, (os.cpu_count() or 1) // serve.workers)})
    return settings.model_copy(update={"serve": serve, "matching": matching, "runtime": runtime})


def _check_catalog(settings: Settings) -> None:
    """A missing catalog, a Triton serving another bundle, or an open door beyond loopback is a clear error now,
    not a failed app start; a store that is down only warns (the app starts unready and recovers)."""
    try:
        with open_catalog(settings) as catalog:
            if settings.model_url:
                catalog.embedder()
            _refuse_open_door(settings, any(key.revoked_at is None for key in catalog.store.api_keys()))
    except Exception as exc:
        if (reason := unavailable_reason(exc)) is None:
            raise
        err.print(f"[yellow]warning:[/] {reason}; serving anyway, /ready answers 503 until it is reachable")


def _refuse_open_door(settings: Settings, has_keys: bool) -> None:
    serve = settings.serve
    exposed = serve.host not in LOOPBACK_HOSTS or serve.require_keys
    if exposed and not has_keys and not serve.insecure_no_auth:
        raise ProdmatchError(
            f"refusing to serve on {serve.host} without API keys: anyone who can reach it could read and change the "
            f"catalog. Create one with `prodmatch keys create --scope admin` and send it as "
            f"`Authorization: Bearer KEY`, or (on a trusted network only) pass --insecure-no-auth"
        )


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

    chosen_modes = [m.strip() for m in modes.split(",")]
    reports = bench_serve(url, chosen_modes, [int(c) for c in clients.split(",")], requests, photos_in(photos))
    if as_json:
        print_json(reports)
        return
    keys = ["mode", "clients", "requests", "errors", "throughput_per_s", "p50_ms", "p95_ms", "p99_ms"]
    columns = ["mode", "clients", "requests", "errors", "req/s", "p50 ms", "p95 ms", "p99 ms"]
    table_rows(f"load test · {url}", columns, [[str(r[key]) for key in keys] for r in reports], justify="right")
