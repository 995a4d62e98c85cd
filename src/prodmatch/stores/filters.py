"""Attribute filters: KEY=VALUE, KEY!=VALUE, KEY>=NUM, KEY<=NUM, KEY>NUM, KEY<NUM.

What they mean, in every store: KEY=VALUE holds when the attribute's text equals VALUE ignoring case, or its
number equals VALUE's; KEY!=VALUE when the product has the attribute and KEY=VALUE does not hold (a product
without the attribute passes neither); the comparisons hold for attributes with a number (or numeric text).
Stores evaluate them over `searchable(attributes)`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from prodmatch.errors import FilterError

Operator = Literal["=", "!=", ">=", "<=", ">", "<"]
_PATTERN = re.compile(r"^\s*([^=!<>]+?)\s*(>=|<=|!=|=|>|<)\s*(.*?)\s*$")
NUMERIC_OPERATORS = (">=", "<=", ">", "<")


@dataclass(frozen=True)
class Filter:
    key: str
    op: Operator
    value: str

    @property
    def number(self) -> float | None:
        try:
            return float(self.value)
        except ValueError:
            return None


def parse_filter(text: str) -> Filter:
    """Parse one filter expression, or raise FilterError saying what is wrong."""
    match = _PATTERN.match(text)
    if not match or not match.group(3):
        raise FilterError(f"bad filter {text!r}: expected KEY=VALUE, KEY!=VALUE or KEY>=NUM (also <=, >, <)")
    key, op, value = match.groups()
    parsed = Filter(key, op, value)  # type: ignore[arg-type]
    if op in NUMERIC_OPERATORS and parsed.number is None:
        raise FilterError(f"bad filter {text!r}: {op} needs a number, got {value!r}")
    return parsed


def parse_filters(texts: list[str] | None) -> list[Filter]:
    return [parse_filter(text) for text in texts or []]


def check_keys(filters: list[Filter], known: set[str]) -> None:
    """Raise FilterError for a key the catalog does not have, listing the ones it does."""
    for item in filters:
        if item.key not in known:
            raise FilterError(f"unknown filter key {item.key!r}; filterable keys: {', '.join(sorted(known))}")


def searchable(attributes: dict[str, object]) -> dict[str, dict[str, object]]:
    """The form every store filters on: {"s": key -> lower-cased text, "n": key -> number}.

    One normalisation for SQL, MongoDB, pgvector and Qdrant, so that a filter selects the same products in each:
    text compares case-insensitively, a number also matches its numeric text ("2012" = 2012), and booleans are
    the words true / false. Lists, objects and nulls are not filterable.
    """
    text: dict[str, object] = {}
    numbers: dict[str, object] = {}
    for key, value in attributes.items():
        if isinstance(value, bool):
            text[key] = "true" if value else "false"
        elif isinstance(value, int | float):
            text[key], numbers[key] = _number_text(value), float(value)
        elif isinstance(value, str):
            text[key] = value.lower()
            if (number := _as_number(value)) is not None:
                numbers[key] = number
    return {"s": text, "n": numbers}


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _as_number(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if number == number and abs(number) != float("inf") else None  # NaN and inf do not compare


def field_key(key: str) -> str:
    """KEY made safe as one step of a document path (MongoDB, Qdrant): "." and "$" would start a new step or
    an operator there, so they (and the escape character) are percent-encoded."""
    return key.replace("%", "%25").replace(".", "%2E").replace("$", "%24")
