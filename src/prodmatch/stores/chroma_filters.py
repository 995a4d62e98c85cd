"""Filters as Chroma `where` documents, and the flat metadata they run on.

Chroma metadata is flat (key -> str/int/float/bool) and `where` has no negation and no "exists" test; `$ne`
holds for a record that lacks the key. So each record carries, per filterable attribute: "s.KEY" (the text) and
"h.KEY": true, or "n.KEY" (the number, as a float) and "m.KEY": true; and a condition is first pushed into
negation normal form (De Morgan), where each negated primitive has a `where` form:

    not TextEquals(k, t)      s.k $ne t                 (also true without k, as the algebra requires)
    not NumberEquals(k, x)    n.k $ne x
    not NumberCompare(k, op)  n.k (the opposite op) x  $or  m.k $ne true
    not HasText(k)            h.k $ne true

Keys are field_key(KEY), so "." in a key never splits the name. $and / $or need two or more parts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prodmatch.stores.conditions import (
    AllOf,
    AnyOf,
    Comparison,
    Condition,
    HasText,
    Not,
    NumberCompare,
    NumberEquals,
    TextEquals,
)
from prodmatch.stores.filters import Filter, condition_of, field_key
from prodmatch.stores.records import VectorLabel

_OPERATORS: dict[Comparison, str] = {">=": "$gte", "<=": "$lte", ">": "$gt", "<": "$lt"}
_OPPOSITE: dict[Comparison, Comparison] = {">=": "<", "<=": ">", ">": "<=", "<": ">="}
Where = dict[str, Any]


def metadata(label: VectorLabel) -> dict[str, Any]:
    flat: dict[str, Any] = {"product_id": label.product_id}
    for key, text in label.search.get("s", {}).items():
        flat[f"s.{field_key(key)}"], flat[f"h.{field_key(key)}"] = text, True
    for key, number in label.search.get("n", {}).items():
        flat[f"n.{field_key(key)}"], flat[f"m.{field_key(key)}"] = float(number), True
    return flat


def _join(operator: str, parts: list[Where]) -> Where:
    if not parts:
        raise ValueError("an empty condition list has no Chroma form")
    return parts[0] if len(parts) == 1 else {operator: parts}


def _where(condition: Condition, negated: bool) -> Where:
    match condition:
        case TextEquals(key, text):
            return {f"s.{field_key(key)}": {"$ne" if negated else "$eq": text}}
        case NumberEquals(key, number):
            return {f"n.{field_key(key)}": {"$ne" if negated else "$eq": float(number)}}
        case NumberCompare(key, op, number):
            if not negated:
                return {f"n.{field_key(key)}": {_OPERATORS[op]: float(number)}}
            missing = {f"m.{field_key(key)}": {"$ne": True}}
            return {"$or": [{f"n.{field_key(key)}": {_OPERATORS[_OPPOSITE[op]]: float(number)}}, missing]}
        case HasText(key):
            return {f"h.{field_key(key)}": {"$ne" if negated else "$eq": True}}
        case AnyOf(parts):
            return _join("$and" if negated else "$or", [_where(part, negated) for part in parts])
        case AllOf(parts):
            return _join("$or" if negated else "$and", [_where(part, negated) for part in parts])
        case Not(part):
            return _where(part, not negated)
    raise TypeError(f"not a condition: {condition!r}")


def chroma_where(filters: Sequence[Filter]) -> Where | None:
    """The `where` document selecting the records whose metadata passes FILTERS (None when there are none)."""
    condition = condition_of(filters)
    return None if condition is None else _where(condition, negated=False)
