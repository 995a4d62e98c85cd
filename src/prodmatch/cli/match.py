"""`prodmatch match`: the match use case from the command line (logged like an API query)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from prodmatch.application.feedback import record_feedback
from prodmatch.application.querying import DirectQueryLog, MatchAnswer, Matcher, MatchQuery
from prodmatch.cli.common import (
    DataDirOption,
    FilterOption,
    JsonOption,
    configured_catalog,
    err,
    out,
    print_json,
    table_rows,
)
from prodmatch.errors import InvalidImageError
from prodmatch.stores.filters import parse_filters


def match(
    ctx: typer.Context,
    image: Annotated[Path | None, typer.Option("--image", help="query photo")] = None,
    text: Annotated[str | None, typer.Option("--text", help="query description")] = None,
    data_dir: DataDirOption = None,
    top_k: Annotated[int, typer.Option("--top-k", help="number of products")] = 10,
    filters: FilterOption = None,
    as_json: JsonOption = False,
    profile: Annotated[bool, typer.Option("--profile", help="show milliseconds per stage (decode ... log)")] = False,
) -> None:
    """Find the catalog products matching a photo or a description."""
    if (image is None) == (text is None):
        raise typer.BadParameter("give exactly one of --image or --text")
    query = MatchQuery(image=_read(image) if image else None, text=text, top_k=top_k, filters=parse_filters(filters))
    query.profile = profile
    with configured_catalog(ctx, data_dir) as catalog:
        catalog.warm()  # took_ms then measures the query, not loading the model
        matcher = Matcher(catalog, DirectQueryLog(catalog.store), catalog.settings.serve.max_text_chars)
        answer = matcher.match(query)
    if as_json:
        print_json(answer.as_dict())
        return
    _print_answer(answer)
    if profile:
        stages = "  ".join(f"{stage} {ms:.2f}" for stage, ms in answer.timings.items())
        err.print(f"[dim]ms per stage: {stages}  (total {answer.result.took_ms:.2f})")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidImageError(f"{path}: cannot open: {exc.strerror or exc}") from exc


def _print_answer(answer: MatchAnswer) -> None:
    result, decision = answer.result, answer.decision
    verdict = (
        "no calibration"
        if decision is None
        else f"{'MATCH' if decision.is_match else 'no match'} (confidence {decision.confidence:.2f})"
    )
    title = f"{len(result.matches)} matches · {verdict} · {result.model} · {result.took_ms:.1f} ms"
    rows = [
        [str(rank), found.id, f"{found.score:.4f}", str(found.product.get("name") or "")]
        for rank, found in enumerate(result.matches, start=1)
    ]
    table_rows(title, ["rank", "id", "score", "name"], rows)


def feedback(
    ctx: typer.Context,
    query_id: Annotated[str, typer.Argument(help="the query_id of a match answer (match --json, the API, log tail)")],
    product_id: Annotated[str, typer.Argument(help="the product the verdict is about")],
    is_match: Annotated[bool, typer.Option("--yes/--no", help="--yes: this is the product; --no: it is not")],
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Confirm or reject a product for an answered query: a confirmed photo is learned by the product."""
    with configured_catalog(ctx, data_dir) as catalog:
        outcome = record_feedback(catalog, query_id, product_id, is_match)
    if as_json:
        print_json(outcome.__dict__)
        return
    learned = " · the photo is now one of its photos" if outcome.learned_photo else ""
    verdict = "is" if is_match else "is not"
    out.print(f"recorded: {product_id} {verdict} the product of query {query_id}{learned}")
