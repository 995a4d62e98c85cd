"""The prodmatch command line: parses options, calls the application's use cases, prints. No logic of its own.

Commands live in one module per group (catalog, match, models, serve, evaluate); this module assembles them.
"""

from __future__ import annotations

import signal
import sys
from typing import Annotated

import typer

from prodmatch.cli import catalog, doctor, download, evaluate, keys, match, models, serve
from prodmatch.cli.common import err
from prodmatch.errors import ProdmatchError
from prodmatch.stores.availability import unavailable_reason

app = typer.Typer(
    help="Match product photos and descriptions against a catalog.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command()(catalog.ingest)
app.command()(download.download)
app.command("calibrate")(catalog.calibrate_command)
app.command()(catalog.stats)
app.command()(match.match)
app.command()(match.feedback)
app.command("eval")(evaluate.evaluate)
app.command()(serve.serve)
app.command()(doctor.doctor)
app.add_typer(catalog.products_app, name="products")
app.add_typer(catalog.log_app, name="log")
app.add_typer(models.model_app, name="model")
app.add_typer(serve.bench_app, name="bench")
app.add_typer(keys.keys_app, name="keys")


@app.callback()
def where(
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


def main() -> None:
    """Entry point: user-facing errors print one line and exit 2, never a traceback."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run finally-blocks (index saves) on kill
    try:
        code = app(standalone_mode=False)  # a command's typer.Exit(N) comes back as N in this mode
        if isinstance(code, int) and code:
            sys.exit(code)
    except ProdmatchError as exc:
        err.print(f"[red]error:[/] {exc}")
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]: what was written is consistent; run the same command again to resume")
        sys.exit(130)
    except typer.Abort:
        sys.exit(1)
    except typer.TyperException as exc:  # usage errors: typer prints them like click does
        _usage_error(exc)
    except Exception as exc:
        if (reason := unavailable_reason(exc)) is None:
            raise
        err.print(f"[red]error:[/] {reason}; start it (or fix PRODMATCH_METADATA_URL / PRODMATCH_VECTORS_URL)")
        sys.exit(2)


def _usage_error(exc: typer.TyperException) -> None:
    show = getattr(exc, "show", None)
    if show is None:
        raise exc
    show()
    sys.exit(getattr(exc, "exit_code", 2))
