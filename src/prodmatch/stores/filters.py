"""Attribute filters: KEY=VALUE, KEY!=VALUE, KEY>=NUM, KEY<=NUM, KEY>NUM, KEY<NUM."""

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
