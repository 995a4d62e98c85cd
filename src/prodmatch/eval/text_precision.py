"""Text precision: how precise text search is for the queries a merchandiser types, built from the catalog itself.

Colour + type queries: for every (colour, type) pair of attribute values the catalog holds, the query
"<colour> <type, plural>" ("navy blue tshirts"); relevant = the products holding both values (case ignored).
Precision of the top min(5, relevant) results, averaged over the queries. Name queries: a random half of a
product's name words, in order, as `prodmatch eval`'s text queries; Recall@1 with duplicate listings accepted.

Each is measured with the text search as served (hybrid, settings.matching) and with its parts alone: dense
(the sentence embedding), lexical (BM25 only) and lexical + attributes (no dense term), so the figures say what
each part brings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from prodmatch.composition import Catalog
from prodmatch.matching.service import DECISION_DEPTH, MatchService, rank
from prodmatch.stores.records import Product

COLOUR_KEYS = ("colour", "color")
TYPE_KEYS = ("producttype", "product_type", "articletype", "type", "subcategory", "category")
TOP = 5
# The text search's parts alone, as weights (dense, lexical, attributes); "hybrid" is the configured search.
PARTS: dict[str, tuple[float, float, float]] = {"lexical": (0.0, 1.0, 0.0), "lexical+attributes": (0.0, 1.0, 1.0)}


@dataclass(frozen=True)
class TextCase:
    query: str
    relevant: frozenset[str]


def _key(products: Sequence[Product], names: Sequence[str]) -> str | None:
    """The first attribute key, in NAMES order (case ignored), that products hold with more than one text value."""
    values: dict[str, set[str]] = {}
    for product in products:
        for key, value in product.attributes.items():
            if isinstance(value, str) and value.strip():
                values.setdefault(key, set()).add(value.strip().lower())
    by_name = {key.lower(): key for key, seen in values.items() if len(seen) > 1}
    return next((by_name[name] for name in names if name in by_name), None)


def plural(word: str) -> str:
    return word if word.endswith("s") else word + "s"


def colour_type_queries(products: Sequence[Product]) -> list[TextCase]:
    """One query per (colour, type) pair in the catalog; none when it has no colour or no type attribute."""
    colour_key, type_key = _key(products, COLOUR_KEYS), _key(products, TYPE_KEYS)
    if colour_key is None or type_key is None:
        return []
    pairs: dict[tuple[str, str], set[str]] = {}
    for product in products:
        colour, kind = product.attributes.get(colour_key), product.attributes.get(type_key)
        if isinstance(colour, str) and isinstance(kind, str) and colour.strip() and kind.strip():
            pairs.setdefault((colour.strip().lower(), kind.strip().lower()), set()).add(product.id)
    return [TextCase(f"{colour} {plural(kind)}", frozenset(ids)) for (colour, kind), ids in sorted(pairs.items())]


def name_queries(products: Sequence[Product], seed: int) -> list[tuple[str, str]]:
    """(a random half of the name's words, product id) for each named product."""
    cases = []
    for i, product in enumerate(products):
        words = (product.name or "").split()
        if words:
            keep = sorted(
                np.random.default_rng([seed, i]).choice(len(words), size=(len(words) + 1) // 2, replace=False)
            )
            cases.append((" ".join(words[j] for j in keep), product.id))
    return cases


def text_precision(catalog: Catalog, seed: int = 0) -> dict[str, Any] | None:
    """Colour + type precision and name Recall@1 of each text search variant; None for a catalog without colour
    and type attributes and without names."""
    products = catalog.store.page(0, catalog.store.count())
    cases, names = colour_type_queries(products), name_queries(products, seed)
    if not cases and not names:
        return None
    embedder = catalog.embedder()
    case_vectors = embedder.embed_texts([c.query for c in cases]) if cases else np.zeros((0, 1), np.float32)
    name_vectors = embedder.embed_texts([q for q, _ in names]) if names else np.zeros((0, 1), np.float32)
    groups = catalog.facts.duplicate_groups()
    report: dict[str, Any] = {"colour_type_queries": len(cases), "name_queries": len(names)}
    for variant, service in variants(catalog).items():
        words = variant != "dense"
        report[variant] = {
            "colour_type_precision": _precision(service, cases, case_vectors, words),
            "name_recall@1": _name_recall(service, names, name_vectors, groups, words),
        }
    return report


def variants(catalog: Catalog) -> dict[str, MatchService]:
    """The catalog's text search as served ("hybrid"), its dense part ("dense") and its lexical parts alone."""
    served = catalog.matcher
    found = {"dense": served, "hybrid": served}
    for name, (dense, lexical, attributes) in PARTS.items():
        weights = {
            "hybrid_dense_weight": dense,
            "hybrid_lexical_weight": lexical,
            "hybrid_attribute_weight": attributes,
        }
        settings = served.settings.model_copy(update={**weights, "hybrid_text": True})
        found[name] = MatchService(served.stores, served.model, settings, served.facts)
    return found


def _precision(service: MatchService, cases: list[TextCase], vectors: np.ndarray, words: bool) -> float | None:
    if not cases:
        return None
    shares = []
    for case, vector in zip(cases, vectors, strict=True):
        top = min(TOP, len(case.relevant))
        scores = service.text_query_scores(vector, max(top, DECISION_DEPTH), words=case.query if words else None)
        shares.append(sum(pid in case.relevant for pid, _ in rank(scores, top)) / top)
    return round(float(np.mean(shares)), 4)


def _name_recall(
    service: MatchService,
    names: list[tuple[str, str]],
    vectors: np.ndarray,
    groups: dict[str, set[str]],
    words: bool,
) -> float | None:
    if not names:
        return None
    hits = 0
    for (query, product_id), vector in zip(names, vectors, strict=True):
        ranked = rank(service.text_query_scores(vector, DECISION_DEPTH, words=query if words else None), 1)
        hits += bool(ranked) and ranked[0][0] in groups.get(product_id, {product_id})
    return round(hits / len(names), 4)
