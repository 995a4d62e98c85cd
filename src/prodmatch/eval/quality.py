"""`prodmatch eval`: ingest a catalog into a temporary data dir, query it, report Recall@1/@5 and MRR@10.

A query is correct when a returned product is the source product or a duplicate listing of it: a product
whose image is byte-identical, or the same photo saved as another file (re-encoded; detected at ingest, see
catalog.ingest). The figures counting byte-identical duplicates only are reported beside them.
Image queries: each product's first image altered as a customer photo
(see eval.alter). Text queries: the product's short categorical attribute values (e.g. colour, type,
gender) plus a random half of the words of its name, in order; products without a name use attributes only.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from prodmatch.catalog.ingest import CatalogIngester, ColumnOptions
from prodmatch.config import CatalogLocation, Settings
from prodmatch.eval.alter import customer_photo
from prodmatch.matching.decision import margin_of
from prodmatch.matching.service import DECISION_DEPTH, MatchService, rank
from prodmatch.models.preprocess import open_image
from prodmatch.stores.datadir import DataDir
from prodmatch.stores.records import Product

QUERY_KINDS = ("images", "text")
RANK_DEPTH = 10
_BATCH = 32


def evaluate_catalog(
    settings: Settings,
    catalog: Path,
    columns: ColumnOptions,
    images_root: Path | None,
    model: str | None,
    kinds: Sequence[str],
    seed: int = 0,
    announce: Callable[[str], None] = lambda _m: None,
    holdout: float = 0.2,
) -> dict[str, Any]:
    """Build a throwaway catalog of CATALOG and measure retrieval quality for each query kind.

    The catalog is private: SQLite + FAISS in a temporary folder, deleted afterwards. Evaluation deletes products
    and recalibrates, so it must never reach the configured stores (PRODMATCH_METADATA_URL, --vectors-url...)."""
    with tempfile.TemporaryDirectory(prefix="prodmatch-eval-") as tmp:
        location = CatalogLocation.embedded(Path(tmp))
        announce(f"evaluating in a temporary {location.describe()}; the configured catalog is not touched")
        datadir = DataDir.open(settings, location=location, model=model, create=True, announce=announce)
        try:
            ingest = CatalogIngester(datadir).ingest_file(catalog, columns, images_root)
            products = datadir.store.page(0, datadir.store.count())
            groups = duplicate_map(datadir.store.duplicate_groups(include_near=True))
            strict = duplicate_map(datadir.store.duplicate_groups(include_near=False))
            runner = _QueryRunner(MatchService(datadir), groups, strict, seed)
            metrics = {kind: runner.run(kind, products) for kind in kinds}
            decisions = decision_metrics(MatchService(datadir), products, kinds, holdout, seed) if holdout else {}
            return {
                "model": datadir.record.name,
                "products": len(products),
                "rejected": len(ingest.rejected),
                "duplicate_groups": len(set(map(frozenset, groups.values()))),
                "metrics": metrics,
                "decision": decisions,
            }
        finally:
            datadir.close()


def duplicate_map(duplicate_groups: list[list[str]]) -> dict[str, set[str]]:
    """Each product in a duplicate group mapped to its whole group."""
    return {member: set(group) for group in duplicate_groups for member in group}


class _QueryRunner:
    def __init__(
        self, service: MatchService, groups: dict[str, set[str]], strict: dict[str, set[str]], seed: int
    ) -> None:
        self.service = service
        self.groups = groups
        self.strict = strict
        self.seed = seed

    def run(self, kind: str, products: list[Product]) -> dict[str, Any]:
        asked, vectors = build_queries(self.service, kind, products, self.seed)
        scorer = self.service.image_query_scores if kind == "images" else self.service.text_query_scores
        rankings = [[pid for pid, _ in rank(scorer(vector, RANK_DEPTH), RANK_DEPTH)] for vector in vectors]
        return {
            **summarise(_ranks(asked, rankings, self.groups)),
            "byte_identical_duplicates_only": summarise(_ranks(asked, rankings, self.strict)),
        }


def build_queries(
    service: MatchService, kind: str, products: list[Product], seed: int
) -> tuple[list[Product], np.ndarray]:
    """The products that get a query of KIND ("images" or "text") and the embedded queries, in order."""
    embedder = service.datadir.embedder()
    if kind == "images":
        asked = [p for p in products if p.images]
        return asked, _image_query_vectors(service, asked, seed)
    queries = [text_query(p, np.random.default_rng([seed, i])) for i, p in enumerate(products)]
    asked = [p for p, q in zip(products, queries, strict=True) if q]
    return asked, embedder.embed_texts([q for q in queries if q]) if asked else np.zeros((0, 1), np.float32)


def _image_query_vectors(service: MatchService, products: list[Product], seed: int) -> np.ndarray:
    rows = []
    for start in range(0, len(products), _BATCH):
        photos = []
        for offset, product in enumerate(products[start : start + _BATCH]):
            rng = np.random.default_rng([seed, start + offset])
            # A customer's phone photo is rarely larger than this; it also keeps altering fast.
            source = open_image(product.images[0].path, draft_short_side=512)
            source.thumbnail((800, 800))
            photos.append(open_image(customer_photo(source, rng)))
        rows.append(service.datadir.embedder().embed_images(photos))
    return np.vstack(rows) if rows else np.zeros((0, 1), np.float32)


def _ranks(products: list[Product], rankings: list[list[str]], groups: dict[str, set[str]]) -> list[int | None]:
    """1-based rank of the first accepted product in each ranking (None: not found)."""
    ranks: list[int | None] = []
    for product, ranked in zip(products, rankings, strict=True):
        accepted = groups.get(product.id, {product.id})
        ranks.append(next((i + 1 for i, pid in enumerate(ranked) if pid in accepted), None))
    return ranks


_SHORT_VALUE = re.compile(r"^[\w&' -]{2,30}$")


def text_query(product: Product, rng: np.random.Generator) -> str:
    """Short categorical attribute values plus a random half of the name's words."""
    values = [v for v in product.attributes.values() if isinstance(v, str) and _SHORT_VALUE.match(v)]
    words = (product.name or "").split()
    keep = sorted(rng.choice(len(words), size=(len(words) + 1) // 2, replace=False)) if words else []
    return " ".join([*values, *(words[i] for i in keep)]).strip()


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


def decision_metrics(
    service: MatchService, products: list[Product], kinds: Sequence[str], holdout: float, seed: int
) -> dict[str, Any]:
    """Precision and recall of the match / no-match decision, with HOLDOUT of the products removed from the
    catalog (and from calibration) so that their queries are photos of products the catalog does not have.

    A "match" is right only when the top hit is the product (or a duplicate listing); a held-out query
    declared a match is a false match.
    """
    from prodmatch.eval.calibrate import calibrate_decisions

    rng = np.random.default_rng([seed, 99])
    groups = duplicate_map(service.datadir.store.duplicate_groups())
    held = {products[i].id for i in rng.choice(len(products), size=int(len(products) * holdout), replace=False)}
    held |= {member for pid in list(held) for member in groups.get(pid, set())}  # no copy of it may remain
    for product_id in held:
        service.datadir.delete(product_id)
    calibrate_decisions(service)
    service.refresh()
    return {kind: _decide_all(service, kind, products, held, groups, seed) for kind in kinds}


def _decide_all(
    service: MatchService, kind: str, products: list[Product], held: set[str], groups: dict[str, set[str]], seed: int
) -> dict[str, float]:
    asked, vectors = build_queries(service, kind, products, seed)
    space = "image" if kind == "images" else "text"
    scorer = service.image_query_scores if kind == "images" else service.text_query_scores
    right = wrong = missed = false_matches = 0
    for product, vector in zip(asked, vectors, strict=True):
        scores = scorer(vector, DECISION_DEPTH)
        top, top_score = rank(scores, 1)[0] if scores else ("", None)
        decision = service.decide(space, top_score, margin_of(scores, top, groups) if scores else 0.0)
        said_match = bool(decision and decision.is_match)
        if product.id in held:
            false_matches += said_match
        elif said_match and top in groups.get(product.id, {product.id}):
            right += 1
        elif said_match:
            wrong += 1
        else:
            missed += 1
    in_catalog = right + wrong + missed
    declared = right + wrong + false_matches
    return {
        "in_catalog_queries": in_catalog,
        "held_out_queries": len(asked) - in_catalog,
        "precision": round(right / declared, 4) if declared else 0.0,
        "recall": round(right / in_catalog, 4) if in_catalog else 0.0,
        "false_match_rate_held_out": round(false_matches / max(1, len(asked) - in_catalog), 4),
    }
