"""`prodmatch eval`: ingest a catalog into a private temporary catalog, query it, report Recall@1/@5 and MRR@10.

A query is correct when a returned product is the source product or a duplicate listing of it: a product
whose image is byte-identical, or the same photo saved as another file (re-encoded; detected at ingest, see
catalog.ingest). The figures counting byte-identical duplicates only are reported beside them.
Image queries: each product's first image altered as a customer photo, hard (matching.hard_alterations, the
default) or easy (matching.alterations); see eval.queries. Text queries: the product's short categorical attribute
values (e.g. colour, type, gender) plus a random half of the words of its name, in order (matching.simulation),
searched with their words (hybrid); the text section adds colour + type precision and name Recall@1 per text
search variant (eval.text_precision). Real customer photos with their product ids are evaluated by
eval.real_photos instead.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from prodmatch.application.ingesting import calibrate
from prodmatch.catalog.ingest import ColumnOptions
from prodmatch.composition import Catalog, open_catalog
from prodmatch.config import CatalogLocation, Settings
from prodmatch.eval.queries import DEFAULT_DIFFICULTY, EvalQueries, eval_queries
from prodmatch.eval.text_precision import text_precision
from prodmatch.matching.facts import group_map
from prodmatch.matching.service import DECISION_DEPTH, MatchResult
from prodmatch.matching.simulation import SPACES
from prodmatch.stores.records import Product

RANK_DEPTH = 10


@dataclass(frozen=True)
class EvalRequest:
    """What to evaluate: a catalog file, its columns, the model, which query spaces, the seed, the holdout and how
    hard the altered photos are (eval.queries.DIFFICULTIES)."""

    catalog: Path
    columns: ColumnOptions
    images_root: Path | None = None
    model: str | None = None
    spaces: Sequence[str] = SPACES
    seed: int = 0
    holdout: float = 0.2
    difficulty: str = DEFAULT_DIFFICULTY


def evaluate_catalog(
    settings: Settings, request: EvalRequest, announce: Callable[[str], None] = lambda _m: None
) -> dict[str, Any]:
    """Build a throwaway catalog of REQUEST.catalog and measure retrieval quality for each query space.

    The catalog is private: SQLite + FAISS in a temporary folder, deleted afterwards. Evaluation deletes products
    and recalibrates, so it must never reach the configured stores (PRODMATCH_METADATA_URL, --vectors-url...)."""
    with tempfile.TemporaryDirectory(prefix="prodmatch-eval-") as tmp:
        location = CatalogLocation.embedded(Path(tmp))
        announce(f"evaluating in a temporary {location.describe()}; the configured catalog is not touched")
        with open_catalog(settings, location=location, model=request.model, create=True, announce=announce) as catalog:
            ingest = catalog.ingester().ingest_file(request.catalog, request.columns, request.images_root)
            catalog.facts.refresh()
            products = catalog.store.page(0, catalog.store.count())
            groups = group_map(catalog.store.duplicate_groups(include_near=True))
            strict = group_map(catalog.store.duplicate_groups(include_near=False))
            metrics = {space: _retrieval(catalog, space, products, groups, strict, request) for space in request.spaces}
            if "text" in metrics:  # before the holdout deletes products: the whole catalog answers
                metrics["text"]["precision"] = text_precision(catalog, request.seed)
            decisions = decision_metrics(catalog, products, request) if request.holdout else {}
            return {
                "model": catalog.record.name,
                "difficulty": request.difficulty,
                "products": len(products),
                "rejected": len(ingest.rejected),
                "duplicate_groups": len(set(map(frozenset, groups.values()))),
                "metrics": metrics,
                "decision": decisions,
            }


def _retrieval(
    catalog: Catalog,
    space: str,
    products: list[Product],
    groups: dict[str, set[str]],
    strict: dict[str, set[str]],
    request: EvalRequest,
) -> dict[str, Any]:
    queries = eval_queries(catalog.embedder(), space, products, request.seed, request.difficulty)
    asked = queries.asked
    rankings = [[m.id for m in ask(catalog, space, queries, i, RANK_DEPTH).matches] for i in range(len(asked))]
    return {
        **summarise(ranks_of(asked, rankings, groups)),
        "byte_identical_duplicates_only": summarise(ranks_of(asked, rankings, strict)),
    }


def ranks_of(products: list[Product], rankings: list[list[str]], groups: dict[str, set[str]]) -> list[int | None]:
    """1-based rank of the first accepted product in each ranking (None: not found)."""
    ranks: list[int | None] = []
    for product, ranked in zip(products, rankings, strict=True):
        accepted = groups.get(product.id, {product.id})
        ranks.append(next((i + 1 for i, pid in enumerate(ranked) if pid in accepted), None))
    return ranks


def summarise(ranks: list[int | None]) -> dict[str, float]:
    """Recall@1, Recall@5 and MRR@10 over RANKS (None: not in the top 10)."""
    n = len(ranks)
    if n == 0:
        return {"n": 0, "recall@1": 0.0, "recall@5": 0.0, "mrr": 0.0}
    return {
        "n": n,
        "recall@1": round(sum(r == 1 for r in ranks) / n, 4),
        "recall@5": round(sum(r is not None and r <= 5 for r in ranks) / n, 4),
        "mrr": round(sum(1.0 / r for r in ranks if r is not None) / n, 4),
    }


def decision_metrics(catalog: Catalog, products: list[Product], request: EvalRequest) -> dict[str, Any]:
    """Precision and recall of the match / no-match decision, with a share (holdout) of the products removed from
    the catalog (and from calibration) so that their queries are photos of products the catalog does not have.

    A "match" is right only when the top hit is the product (or a duplicate listing); a held-out query
    declared a match is a false match.
    """
    rng = np.random.default_rng([request.seed, 99])
    groups = catalog.facts.duplicate_groups()
    chosen = rng.choice(len(products), size=int(len(products) * request.holdout), replace=False)
    held = {products[i].id for i in chosen}
    held |= {member for pid in list(held) for member in groups.get(pid, set())}  # no copy of it may remain
    for product_id in held:
        catalog.stores.delete(product_id)
    catalog.facts.refresh()
    calibrate(catalog)
    return {space: _decide_all(catalog, space, products, held, groups, request) for space in request.spaces}


def _decide_all(
    catalog: Catalog,
    space: str,
    products: list[Product],
    held: set[str],
    groups: dict[str, set[str]],
    request: EvalRequest,
) -> dict[str, float]:
    queries = eval_queries(catalog.embedder(), space, products, request.seed, request.difficulty)
    asked = queries.asked
    tally = {"right": 0, "wrong": 0, "missed": 0, "false": 0}
    for i, product in enumerate(asked):
        result = ask(catalog, space, queries, i, DECISION_DEPTH)
        top = result.matches[0].id if result.matches else ""
        decision = catalog.matcher.decide(space, result)
        said_match = bool(decision and decision.is_match)
        if product.id in held:
            tally["false"] += said_match
        elif said_match:
            tally["right" if top in groups.get(product.id, {product.id}) else "wrong"] += 1
        else:
            tally["missed"] += 1
    return _decision_figures(tally, len(asked))


def ask(catalog: Catalog, space: str, queries: EvalQueries, index: int, depth: int) -> MatchResult:
    """Query I as the service answers it: a photo verified against the top products' local features (when the
    catalog verifies), a text scored with its words (hybrid)."""
    service, vector = catalog.matcher, queries.vectors[index]
    photo = queries.photos[index]
    keypoints = catalog.features.of_query(photo) if photo is not None and service.verifies else None
    image, text = (vector, None) if space == "image" else (None, vector)
    return service.match_vectors(image, text, depth, keypoints=keypoints, words=queries.words[index])


def _decision_figures(tally: dict[str, int], asked: int) -> dict[str, float]:
    in_catalog = tally["right"] + tally["wrong"] + tally["missed"]
    declared = tally["right"] + tally["wrong"] + tally["false"]
    return {
        "in_catalog_queries": in_catalog,
        "held_out_queries": asked - in_catalog,
        "precision": round(tally["right"] / declared, 4) if declared else 0.0,
        "recall": round(tally["right"] / in_catalog, 4) if in_catalog else 0.0,
        "false_match_rate_held_out": round(tally["false"] / max(1, asked - in_catalog), 4),
    }
