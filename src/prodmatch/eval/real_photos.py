"""`prodmatch eval CATALOG --queries-file QUERIES.csv`: real customer photos against a catalog's own photos.

QUERIES.csv names, per row, a product id and a photo of that product taken by a customer (columns `id` and `image`
by default; image paths are relative to the CSV's folder). In a private temporary catalog (never the configured
stores), a share of the products that have photos is held out (removed from the catalog before calibration, a
share of each --breakdown value when one is given): their photos test "no match". The others' photos are asked
through the application's own match use case (application.querying.Matcher, so every lever the live service has
counts), and give Recall@1/@5, MRR@10 and the decision figures.

--learn-per-product N: the first N photos of each catalog product are asked first and confirmed through the real
feedback path (application.feedback.record_feedback: a rejection of a wrong top hit, then a confirmation, so the
photo becomes a product photo and the decision is recalibrated on real verdicts). The remaining photos are then
evaluated before (zero-shot) and after, on the same photos. Held-out products' photos are never confirmed.
"""

from __future__ import annotations

import csv
import tempfile
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from prodmatch.application.feedback import record_feedback
from prodmatch.application.ingesting import calibrate
from prodmatch.application.querying import DirectQueryLog, Matcher, MatchQuery
from prodmatch.catalog.ingest import ColumnOptions
from prodmatch.composition import Catalog, open_catalog
from prodmatch.config import CatalogLocation, Settings
from prodmatch.errors import ProdmatchError
from prodmatch.eval.quality import RANK_DEPTH, summarise
from prodmatch.stores.records import Product


@dataclass(frozen=True)
class QueryPhoto:
    product_id: str
    path: Path


@dataclass(frozen=True)
class PhotoEvalRequest:
    """A catalog file and real photos of its products (queries_file), with the product split and learning."""

    catalog: Path
    columns: ColumnOptions
    queries_file: Path
    images_root: Path | None = None
    model: str | None = None
    seed: int = 0
    holdout: float = 0.2
    learn_per_product: int = 0
    breakdown: str | None = None  # a product attribute reported value by value (grocery-dev: kind)
    query_columns: tuple[str, str] = ("id", "image")


@dataclass
class _Asked:
    """What one phase asked: the products' photos, their ranks and decisions."""

    ranks: list[int | None] = field(default_factory=list)
    values: list[str] = field(default_factory=list)
    tally: dict[str, int] = field(default_factory=lambda: {"right": 0, "wrong": 0, "missed": 0, "false": 0, "held": 0})


def read_query_photos(path: Path, columns: tuple[str, str] = ("id", "image")) -> list[QueryPhoto]:
    """The (product id, photo) rows of a queries CSV; photo paths relative to the CSV's folder."""
    id_col, image_col = columns
    with path.open(newline="", encoding="utf-8") as source:
        reader = csv.DictReader(source)
        missing = {id_col, image_col} - set(reader.fieldnames or [])
        if missing:
            raise ProdmatchError(f"{path}: no column {', '.join(sorted(missing))} (found: {reader.fieldnames})")
        rows = [QueryPhoto(row[id_col].strip(), path.parent / row[image_col].strip()) for row in reader]
    return [row for row in rows if row.product_id]


def evaluate_photos(
    settings: Settings, request: PhotoEvalRequest, announce: Callable[[str], None] = lambda _m: None
) -> dict[str, Any]:
    """Ingest REQUEST.catalog into a private temporary catalog and measure it on the real query photos."""
    photos = read_query_photos(request.queries_file, request.query_columns)
    # learning needs the query photos kept; in the private catalog this changes nothing anyone else sees
    private = settings.model_copy(deep=True)
    private.matching.learn_from_feedback = True
    with tempfile.TemporaryDirectory(prefix="prodmatch-eval-") as tmp:
        location = CatalogLocation.embedded(Path(tmp))
        announce(f"evaluating in a temporary {location.describe()}; the configured catalog is not touched")
        with open_catalog(private, location=location, model=request.model, create=True, announce=announce) as catalog:
            ingest = catalog.ingester().ingest_file(request.catalog, request.columns, request.images_root)
            catalog.facts.refresh()
            return _run(catalog, request, photos, len(ingest.rejected), announce)


def _run(
    catalog: Catalog,
    request: PhotoEvalRequest,
    photos: list[QueryPhoto],
    rejected: int,
    announce: Callable[[str], None],
) -> dict[str, Any]:
    products = {p.id: p for p in catalog.store.page(0, catalog.store.count())}
    known = [photo for photo in photos if photo.product_id in products]
    held = hold_out(products, {photo.product_id for photo in known}, request)
    for product_id in held:
        catalog.stores.delete(product_id)
    catalog.facts.refresh()
    calibrate(catalog)
    learn, asked = split_learning(known, held, request.learn_per_product)
    matcher = Matcher(catalog, DirectQueryLog(catalog.store), catalog.settings.serve.max_text_chars)
    value_of = {pid: _value(product, request.breakdown) for pid, product in products.items()}
    announce(f"asking {len(asked)} photos ({sum(p.product_id in held for p in asked)} of held-out products)")
    report: dict[str, Any] = {
        "model": catalog.record.name,
        "products": len(products) - len(held),
        "held_out_products": len(held),
        "rejected": rejected,
        "photos": {"given": len(photos), "unknown_product": len(photos) - len(known), "evaluated": len(asked)},
        "zero_shot": _figures(_ask(catalog, matcher, asked, held, value_of)),
    }
    if learn:
        announce(f"confirming {len(learn)} photos through feedback ({request.learn_per_product} per product)")
        report["learned"] = learn_from(catalog, matcher, learn)
        report["after_learning"] = _figures(_ask(catalog, matcher, asked, held, value_of))
    return report


def hold_out(products: dict[str, Product], with_photos: set[str], request: PhotoEvalRequest) -> set[str]:
    """A share (request.holdout) of the products that have photos, drawn per breakdown value, plus their duplicate
    listings (no copy of a held-out product may stay in the catalog)."""
    rng = np.random.default_rng([request.seed, 99])
    by_value: dict[str, list[str]] = defaultdict(list)
    for product_id in sorted(with_photos):
        by_value[_value(products[product_id], request.breakdown)].append(product_id)
    held: set[str] = set()
    for ids in by_value.values():
        count = round(len(ids) * request.holdout)
        held |= {ids[i] for i in rng.choice(len(ids), size=count, replace=False)}
    return held


def split_learning(
    photos: Sequence[QueryPhoto], held: set[str], per_product: int
) -> tuple[list[QueryPhoto], list[QueryPhoto]]:
    """(photos to confirm, photos to evaluate): the first PER_PRODUCT photos of each catalog product, in file order,
    are confirmed; held-out products' photos are all evaluated."""
    seen: dict[str, int] = defaultdict(int)
    learn, asked = [], []
    for photo in photos:
        if photo.product_id not in held and seen[photo.product_id] < per_product:
            seen[photo.product_id] += 1
            learn.append(photo)
        else:
            asked.append(photo)
    return learn, asked


def learn_from(catalog: Catalog, matcher: Matcher, photos: Sequence[QueryPhoto]) -> dict[str, int]:
    """Ask each photo, then say what a person would: "not this one" to a wrong top hit, "this is it" to the product.
    The decision is recalibrated at the end (feedback recalibrates every few verdicts on its own too)."""
    learned = rejected = 0
    for photo in photos:
        answer = matcher.match(MatchQuery(image=photo.path.read_bytes(), top_k=RANK_DEPTH))
        top = answer.result.matches[0].id if answer.result.matches else None
        if top is not None and top not in _accepted(catalog, photo.product_id):
            record_feedback(catalog, answer.query_id, top, False)
            rejected += 1
        learned += record_feedback(catalog, answer.query_id, photo.product_id, True).learned_photo
    calibrate(catalog)
    return {"confirmed": len(photos), "learned_photos": learned, "rejected_top_hits": rejected}


def _ask(
    catalog: Catalog, matcher: Matcher, photos: Sequence[QueryPhoto], held: set[str], value_of: dict[str, str]
) -> _Asked:
    asked = _Asked()
    for photo in photos:
        answer = matcher.match(MatchQuery(image=photo.path.read_bytes(), top_k=RANK_DEPTH))
        ranked = [match.id for match in answer.result.matches]
        said_match = answer.decision is not None and answer.decision.is_match
        if photo.product_id in held:
            asked.tally["held"] += 1
            asked.tally["false"] += said_match
            continue
        accepted = _accepted(catalog, photo.product_id)
        asked.ranks.append(next((i + 1 for i, pid in enumerate(ranked) if pid in accepted), None))
        asked.values.append(value_of[photo.product_id])
        right = bool(ranked) and ranked[0] in accepted
        key = ("right" if right else "wrong") if said_match else "missed"
        asked.tally[key] += 1
    return asked


def _figures(asked: _Asked) -> dict[str, Any]:
    tally = asked.tally
    in_catalog = tally["right"] + tally["wrong"] + tally["missed"]
    declared = tally["right"] + tally["wrong"] + tally["false"]
    by_value: dict[str, list[int | None]] = defaultdict(list)
    for rank, value in zip(asked.ranks, asked.values, strict=True):
        by_value[value].append(rank)
    return {
        **summarise(asked.ranks),
        "by_value": {value: summarise(ranks) for value, ranks in sorted(by_value.items())} if len(by_value) > 1 else {},
        "decision": {
            "in_catalog_queries": in_catalog,
            "held_out_queries": tally["held"],
            # the share of in-catalog photos whose correct top hit is declared a match (TPR) ...
            "recall": round(tally["right"] / in_catalog, 4) if in_catalog else 0.0,
            # ... at this share of unknown products' photos declared "no match" (TNR)
            "true_negative_rate_held_out": round(1 - tally["false"] / tally["held"], 4) if tally["held"] else None,
            "precision": round(tally["right"] / declared, 4) if declared else 0.0,
        },
    }


def _accepted(catalog: Catalog, product_id: str) -> set[str]:
    return catalog.facts.duplicate_groups().get(product_id, {product_id})


def _value(product: Product, breakdown: str | None) -> str:
    value = product.attributes.get(breakdown) if breakdown else None
    return str(value) if value is not None else "-"
