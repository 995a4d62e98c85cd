"""`prodmatch eval`: retrieval and decision quality on a catalog file, in a private temporary catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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
from prodmatch.eval.quality import EvalRequest, evaluate_catalog
from prodmatch.matching.simulation import SPACES

_SPACE_NAMES = {"image": ["image"], "images": ["image"], "text": ["text"], "both": list(SPACES)}


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
    seed: Annotated[int, typer.Option(help="seed for the query alterations")] = 0,
    holdout: Annotated[
        float, typer.Option(min=0.0, max=0.9, help="share of products held out to test the match decision")
    ] = 0.2,
    as_json: JsonOption = False,
) -> None:
    """Measure retrieval quality: Recall@1, Recall@5 and MRR for altered-photo and attribute-text queries."""
    if queries not in _SPACE_NAMES:
        raise typer.BadParameter("--queries must be one of: image, text, both")
    columns = column_options(id_col, name_col, image_col, text_cols)
    request = EvalRequest(catalog, columns, images_root, model, _SPACE_NAMES[queries], seed, holdout)
    report = evaluate_catalog(settings_for(ctx), request, lambda m: err.print(f"[cyan]{m}"))
    if as_json:
        print_json(report)
        return
    for space, figures in report["decision"].items():
        out.print(
            f"match decision ({space}, {holdout:.0%} of products held out): precision {figures['precision']:.3f}, "
            f"recall {figures['recall']:.3f}, false matches on held-out photos "
            f"{figures['false_match_rate_held_out']:.3f}"
        )
    rows = [
        [space, str(m["n"]), f"{m['recall@1']:.3f}", f"{m['recall@5']:.3f}", f"{m['mrr']:.3f}"]
        for space, m in report["metrics"].items()
    ]
    title = f"retrieval quality · {report['model']} · {report['products']} products"
    table_rows(title, ["queries", "n", "Recall@1", "Recall@5", "MRR"], rows)
