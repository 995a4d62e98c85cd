"""Filters as Qdrant payload filters, and the payload they run on: a point's product id and its product's
`searchable(attributes)` ("s": texts, "n": numbers). filters.py says what a filter means; this only writes each
condition (conditions.py) as a Qdrant condition.

Payload keys are field_key(KEY) (also escaping '"' and '\\', which a Qdrant path cannot hold). A path names
them bare when Qdrant's path syntax allows (letters, digits, '_', '-') and quoted otherwise: "s.colour",
's."shoe size"'. Bare where possible keeps the names of payload indexes made before quoting existed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qdrant_client import models

from prodmatch.stores.conditions import Comparison, translate
from prodmatch.stores.filters import Filter, condition_of, field_key
from prodmatch.stores.records import VectorLabel

_BOUNDS: dict[Comparison, str] = {">=": "gte", "<=": "lte", ">": "gt", "<": "lt"}


def payload_key(key: str) -> str:
    return field_key(key).replace('"', "%22").replace("\\", "%5C")


def payload_path(part: str, key: str) -> str:
    """The path of KEY's text ("s") or number ("n") in the payload."""
    step = payload_key(key)
    return f"{part}.{step}" if all(c.isalnum() or c in "_-" for c in step) else f'{part}."{step}"'


def payload(label: VectorLabel) -> dict[str, Any]:
    parts = {part: {payload_key(k): v for k, v in values.items()} for part, values in label.search.items()}
    return {"product_id": label.product_id, **parts}


class QdrantBackend:
    """A missing field fails every field condition, and must_not holds wherever its condition does not."""

    def text_equals(self, key: str, text: str) -> models.Condition:
        return models.FieldCondition(key=payload_path("s", key), match=models.MatchValue(value=text))

    def number_equals(self, key: str, number: float) -> models.Condition:
        return models.FieldCondition(key=payload_path("n", key), range=models.Range(gte=number, lte=number))

    def number_compare(self, key: str, op: Comparison, number: float) -> models.Condition:
        return models.FieldCondition(key=payload_path("n", key), range=models.Range(**{_BOUNDS[op]: number}))

    def has_text(self, key: str) -> models.Condition:
        return self.negate(models.IsEmptyCondition(is_empty=models.PayloadField(key=payload_path("s", key))))

    def any_of(self, parts: list[models.Condition]) -> models.Condition:
        return models.Filter(should=parts)

    def all_of(self, parts: list[models.Condition]) -> models.Condition:
        return models.Filter(must=parts)

    def negate(self, part: models.Condition) -> models.Condition:
        return models.Filter(must_not=[part])


def payload_filter(filters: Sequence[Filter]) -> models.Filter | None:
    """The query filter selecting the points whose payload passes FILTERS (None when there are none)."""
    condition = condition_of(filters)
    if condition is None:
        return None
    translated = translate(condition, QdrantBackend())
    return translated if isinstance(translated, models.Filter) else models.Filter(must=[translated])
