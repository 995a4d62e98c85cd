"""Attribute filters: KEY=VALUE, KEY!=VALUE, KEY>=NUM, KEY<=NUM, KEY>NUM, KEY<NUM; what they mean is written
here only, as a condition (conditions.py) over the form every store keeps, `searchable(attributes)`.

KEY=VALUE holds when the attribute's text equals VALUE ignoring case, or its number equals VALUE's; KEY!=VALUE
when the product has the attribute and KEY=VALUE does not hold (a product without the attribute passes
neither); the comparisons hold for attributes with a number (or numeric text). Numbers are finite: "nan" and
"inf" are only text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from prodmatch.errors import FilterError
from prodmatch.stores.conditions import (
    AllOf,
    AnyOf,
    Condition,
    HasText,
    Not,
    NumberCompare,
    NumberEquals,
    TextEquals,
    all_of,
)

Operator = Literal["=", "!=", ">=", "<=", ">", "<"]
_PATTERN = re.compile(r"^\s*([^=!<>]+?)\s*(>=|<=|!=|=|>|<)\s*(.*?)\s*$")


@dataclass(frozen=True)
class Filter:
    key: str
    op: Operator
    value: str

    @property
    def number(self) -> float | None:
        """VALUE as a number, if it is one: the same reading as searchable() gives stored text."""
        return _as_number(self.value)

    @cached_property
    def condition(self) -> Condition:
        """What this filter means (the module docstring): the condition every store translates. Worked out on
        first use and kept; FilterError when it means nothing (a comparison with no number)."""
        match self.op:
            case ">=" | "<=" | ">" | "<":
                if self.number is None:
                    raise FilterError(f"{self.op} needs a number, got {self.value!r}")
                return NumberCompare(self.key, self.op, self.number)
            case "=" | "!=":
                same: Condition = TextEquals(self.key, self.value.lower())
                if self.number is not None:
                    same = AnyOf((same, NumberEquals(self.key, self.number)))
                return same if self.op == "=" else AllOf((HasText(self.key), Not(same)))


def condition_of(filters: Sequence[Filter]) -> Condition | None:
    """All FILTERS as one condition; None when there are none."""
    return all_of([item.condition for item in filters])


def parse_filter(text: str) -> Filter:
    """Parse one filter expression, or raise FilterError saying what is wrong."""
    match = _PATTERN.match(text)
    if not match or not match.group(3):
        raise FilterError(f"bad filter {text!r}: expected KEY=VALUE, KEY!=VALUE or KEY>=NUM (also <=, >, <)")
    key, op, value = match.groups()
    parsed = Filter(key, op, value)  # type: ignore[arg-type]
    try:
        parsed.condition  # noqa: B018  # lowered now: a filter that means nothing is refused as it is parsed
    except FilterError as exc:
        raise FilterError(f"bad filter {text!r}: {exc}") from None
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
