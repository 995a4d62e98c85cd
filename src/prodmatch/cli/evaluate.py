"""`prodmatch eval`: retrieval and decision quality on a catalog file, in a private temporary catalog.

Three kinds of query: altered copies of the catalog's own photos (--difficulty hard|easy) and attribute texts;
real customer photos listed with their product ids (--queries-file); other views of multi-view items (--views).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from prodmatch.cli.common import (
    IdCol,
    ImageCol,
    ImagesRoot,
    JsonOption,
    ModelOption,
    NameCol,
    TextCols,
    column_options,
    err,
    out,
    print_json,
    settings_for,
    table_rows,
)
from prodmatch.config import Settings
from prodmatch.eval.quality import EvalRequest, evaluate_catalog
from prodmatch.eval.queries import DEFAULT_DIFFICULTY, DIFFICULTIES
from prodmatch.eval.real_photos import PhotoEvalRequest, evaluate_photos
from prodmatch.eval.views import views_split
from prodmatch.matching.simulation import SPACES

_SPACE_NAMES = {"image": ["image"], "images": ["image"], "text": ["text"], "both": list(SPACES)}
_HEADER = ["queries", "n", "Recall@1", "Recall@5", "MRR"]

QueriesFile = Annotated[
    Path | None,
    typer.Option(
        "--queries-file",
        exists=True,
        dir_okay=False,
        help="CSV of real customer photos: product id and photo path per row (columns id,image; paths relative to "
        "the CSV); evaluates them instead of altered catalog photos",
    ),
]
LearnOption = Annotated[
    int,
    typer.Option(
        "--learn-per-product",
        min=0,
        help="with --queries-file: confirm the first N photos of each product through feedback, then evaluate the "
        "rest before and after",
    ),
]
BreakdownOption = Annotated[
    str | None, typer.Option("--breakdown", help="with --queries-file: report per value of this column (e.g. kind)")
]
ViewsOption = Annotated[
    str | None,
    typer.Option(
        "--views",
        help="CATALOG is a folder of multi-view photos; this regex finds the item id in each file name (first "
        "photo of an item = catalog, the others = queries), e.g. 'id_(\\d+)'",
    ),
]


def evaluate(
    ctx: typer.Context,
    catalog: Annotated[Path, typer.Argument(help="catalog to evaluate on (a temporary catalog is built)")],
    model: ModelOption = None,
    images_root: ImagesRoot = None,
    id_col: IdCol = None,
    name_col: NameCol = None,
    image_col: ImageCol = None,
    text_cols: TextCols = None,
    queries: Annotated[str, typer.Option("--queries", help="image | text | both")] = "both",
    difficulty: Annotated[
        str, typer.Option("--difficulty", help="altered photos: hard (stacked camera-like degradations) | easy")
    ] = DEFAULT_DIFFICULTY,
    queries_file: QueriesFile = None,
    learn_per_product: LearnOption = 0,
    breakdown: BreakdownOption = None,
    views: ViewsOption = None,
    seed: Annotated[int, typer.Option(help="seed for the query alterations and the held-out products")] = 0,
    holdout: Annotated[
        float, typer.Option(min=0.0, max=0.9, help="share of products held out to test the match decision")
    ] = 0.2,
    as_json: JsonOption = False,
) -> None:
    """Measure retrieval quality: Recall@1, Recall@5 and MRR, and the match decision on held-out products."""
    if queries not in _SPACE_NAMES:
        raise typer.BadParameter("--queries must be one of: image, text, both")
    if difficulty not in DIFFICULTIES:
        raise typer.BadParameter(f"--difficulty must be one of: {', '.join(DIFFICULTIES)}")
    if learn_per_product and queries_file is None:
        raise typer.BadParameter("--learn-per-product needs --queries-file (real photos to confirm)")
    columns = column_options(id_col, name_col, image_col, text_cols)
    settings = settings_for(ctx)
    if views is not None or queries_file is not None:
        photos = PhotoEvalRequest(
            catalog, columns, queries_file or Path(), images_root, model, seed, holdout, learn_per_product, breakdown
        )
        _print_photos(_evaluate_photos(settings, photos, views), as_json)
        return
    request = EvalRequest(catalog, columns, images_root, model, _SPACE_NAMES[queries], seed, holdout, difficulty)
    report = evaluate_catalog(settings, request, lambda m: err.print(f"[cyan]{m}"))
    _print_catalog(report, holdout, as_json)


def _print_catalog(report: dict[str, Any], holdout: float, as_json: bool) -> None:
    if as_json:
        print_json(report)
        return
    for space, figures in report["decision"].items():
        out.print(
            f"match decision ({space}, {holdout:.0%} of products held out): precision {figures['precision']:.3f}, "
            f"recall {figures['recall']:.3f}, false matches on held-out photos "
            f"{figures['false_match_rate_held_out']:.3f}"
        )
    rows = [[space, *_cells(m)] for space, m in report["metrics"].items()]
    title = f"retrieval quality · {report['model']} · {report['products']} products · {report['difficulty']} photos"
    table_rows(title, _HEADER, rows)


def _evaluate_photos(settings: Settings, request: PhotoEvalRequest, views: str | None) -> dict[str, Any]:
    def announce(message: str) -> None:
        err.print(f"[cyan]{message}")

    if views is None:
        return evaluate_photos(settings, request, announce)
    with tempfile.TemporaryDirectory(prefix="prodmatch-views-") as tmp:
        catalog_csv, queries_csv = views_split(request.catalog, views, Path(tmp))
        split = PhotoEvalRequest(
            catalog_csv, request.columns, queries_csv, None, request.model, request.seed, request.holdout,
            request.learn_per_product, request.breakdown,
        )  # fmt: skip
        return evaluate_photos(settings, split, announce)


def _cells(figures: dict[str, Any]) -> list[str]:
    return [str(figures["n"]), f"{figures['recall@1']:.3f}", f"{figures['recall@5']:.3f}", f"{figures['mrr']:.3f}"]


def _print_photos(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(report)
        return
    phases = [name for name in ("zero_shot", "after_learning") if name in report]
    rows = []
    for phase in phases:
        figures = report[phase]
        rows.append([phase, *_cells(figures)])
        rows.extend([f"{phase} · {value}", *_cells(sub)] for value, sub in figures["by_value"].items())
        decision = figures["decision"]
        tnr = decision["true_negative_rate_held_out"]
        out.print(
            f"match decision ({phase}): correct top hit declared a match {decision['recall']:.3f} of "
            f"{decision['in_catalog_queries']} photos; unknown products' photos declared no match "
            f"{'-' if tnr is None else f'{tnr:.3f}'} of {decision['held_out_queries']}"
        )
    title = f"real photos · {report['model']} · {report['products']} products ({report['held_out_products']} held out)"
    table_rows(title, _HEADER, rows)
