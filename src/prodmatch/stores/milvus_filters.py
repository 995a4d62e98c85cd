"""Filters as Milvus boolean expressions over a JSON field `search` holding the product's searchable()
form ({"s": key -> text, "n": key -> number}). filters.py says what a filter means; this writes each condition
(conditions.py) in Milvus's expression language.

Milvus evaluates a JSON path that a row lacks as NULL, and NOT NULL is NULL (the row is dropped): a bare
`not (search["s"]["colour"] == "red")` would skip products without a colour. Every primitive therefore tests
`exists` first, so it is plainly true or false, as the condition algebra requires.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

from prodmatch.stores.conditions import Comparison, translate
from prodmatch.stores.filters import Filter, condition_of

SEARCH_FIELD = "search"


def _literal(text: str) -> str:
    """A Milvus string literal: double quotes, backslash escapes (JSON's rules are a subset Milvus reads)."""
    return json.dumps(text, ensure_ascii=False)


def _number(number: float) -> str:
    if not math.isfinite(number):
        raise ValueError(f"Milvus expressions need finite numbers, not {number}")
    return repr(float(number))


def json_path(part: str, key: str) -> str:
    return f"{SEARCH_FIELD}[{_literal(part)}][{_literal(key)}]"


class MilvusBackend:
    """Conditions as expression strings, each parenthesised so that they nest."""

    def _present(self, path: str, test: str) -> str:
        return f"(exists {path} and {path} {test})"

    def text_equals(self, key: str, text: str) -> str:
        return self._present(json_path("s", key), f"== {_literal(text)}")

    def number_equals(self, key: str, number: float) -> str:
        return self._present(json_path("n", key), f"== {_number(number)}")

    def number_compare(self, key: str, op: Comparison, number: float) -> str:
        return self._present(json_path("n", key), f"{op} {_number(number)}")

    def has_text(self, key: str) -> str:
        return f"(exists {json_path('s', key)})"

    def any_of(self, parts: list[str]) -> str:
        return "(" + " or ".join(parts) + ")" if parts else "(id < 0)"  # no part: nothing passes

    def all_of(self, parts: list[str]) -> str:
        return "(" + " and ".join(parts) + ")" if parts else "(id >= 0)"  # no part: everything passes

    def negate(self, part: str) -> str:
        return f"(not {part})"


def milvus_expression(filters: Sequence[Filter]) -> str:
    """The expression selecting the rows whose `search` passes FILTERS ("" when there are none)."""
    condition = condition_of(filters)
    return "" if condition is None else translate(condition, MilvusBackend())
