"""Filters as MongoDB query documents over the products' `search` field, where MongoMetadataStore keeps
`searchable(attributes)` with every key made one safe path step (field_key). filters.py says what a filter means;
this only writes each condition (conditions.py) as a query document."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prodmatch.stores.conditions import Comparison, translate
from prodmatch.stores.filters import Filter, condition_of, field_key, searchable

Query = dict[str, Any]
_OPERATORS: dict[Comparison, str] = {">=": "$gte", "<=": "$lte", ">": "$gt", "<": "$lt"}


def stored_search(attributes: dict[str, Any]) -> dict[str, Any]:
    """What a product document keeps under `search`."""
    return {part: {field_key(k): v for k, v in values.items()} for part, values in searchable(attributes).items()}


def search_path(part: str, key: str) -> str:
    """The document path of KEY's text ("s") or number ("n")."""
    return f"search.{part}.{field_key(key)}"


class MongoBackend:
    """A missing field matches neither an equality nor a comparison, and $nor of a condition holds wherever the
    condition does not: MongoDB's own logic is already two-valued."""

    def text_equals(self, key: str, text: str) -> Query:
        return {search_path("s", key): text}

    def number_equals(self, key: str, number: float) -> Query:
        return {search_path("n", key): number}

    def number_compare(self, key: str, op: Comparison, number: float) -> Query:
        return {search_path("n", key): {_OPERATORS[op]: number}}

    def has_text(self, key: str) -> Query:
        return {search_path("s", key): {"$exists": True}}

    def any_of(self, parts: list[Query]) -> Query:
        return {"$or": parts}

    def all_of(self, parts: list[Query]) -> Query:
        return {"$and": parts}

    def negate(self, part: Query) -> Query:
        return {"$nor": [part]}


def filter_query(filters: Sequence[Filter]) -> Query:
    """A find() query selecting the products that pass FILTERS ({} when there are none)."""
    condition = condition_of(filters)
    return {} if condition is None else translate(condition, MongoBackend())
