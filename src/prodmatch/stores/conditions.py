"""The small condition algebra that filters are lowered to (filters.py says which condition each filter is), and
the one walk that hands it to a backend.

Conditions hold over a product's stored `searchable(attributes)` form, {"s": key -> lower-cased text,
"n": key -> number}:

    TextEquals(key, text)               s[key] exists and equals TEXT
    NumberEquals(key, number)           n[key] exists and equals NUMBER
    NumberCompare(key, op, number)      n[key] exists and n[key] OP NUMBER (op: >=, <=, >, <)
    HasText(key)                        s[key] exists
    AnyOf(parts), AllOf(parts), Not(part)

Every primitive is plainly true or false: a missing key makes it false, never "unknown" (SQL's NULL), so
Not(TextEquals(k, "x")) holds for a product without k. `holds` is the reference: every backend must select
exactly the products it selects (tests/stores/test_filter_algebra.py).

A backend (SQL, MongoDB, Qdrant here) is a `Backend[T]`: one short method per primitive and per combinator, each
returning the backend's own form (an SQL expression, a query document, a Qdrant condition); `translate` walks
the tree. Adding one (Milvus expressions, Chroma `where`) is one such class, a place where its stores keep
`searchable()`, and a line in the algebra test.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar, assert_never

Comparison = Literal[">=", "<=", ">", "<"]
Search = Mapping[str, Mapping[str, Any]]  # the searchable() form
T = TypeVar("T")


@dataclass(frozen=True)
class TextEquals:
    key: str
    text: str


@dataclass(frozen=True)
class NumberEquals:
    key: str
    number: float


@dataclass(frozen=True)
class NumberCompare:
    key: str
    op: Comparison
    number: float


@dataclass(frozen=True)
class HasText:
    key: str


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Condition, ...]


@dataclass(frozen=True)
class AllOf:
    parts: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    part: Condition


Condition = TextEquals | NumberEquals | NumberCompare | HasText | AnyOf | AllOf | Not


class Backend(Protocol[T]):
    """How one backend writes each kind of condition (its children already translated)."""

    def text_equals(self, key: str, text: str) -> T: ...

    def number_equals(self, key: str, number: float) -> T: ...

    def number_compare(self, key: str, op: Comparison, number: float) -> T: ...

    def has_text(self, key: str) -> T: ...

    def any_of(self, parts: list[T]) -> T: ...

    def all_of(self, parts: list[T]) -> T: ...

    def negate(self, part: T) -> T: ...


def translate(condition: Condition, backend: Backend[T]) -> T:
    """CONDITION in BACKEND's form."""
    match condition:
        case TextEquals(key, text):
            return backend.text_equals(key, text)
        case NumberEquals(key, number):
            return backend.number_equals(key, number)
        case NumberCompare(key, op, number):
            return backend.number_compare(key, op, number)
        case HasText(key):
            return backend.has_text(key)
        case AnyOf(parts):
            return backend.any_of([translate(part, backend) for part in parts])
        case AllOf(parts):
            return backend.all_of([translate(part, backend) for part in parts])
        case Not(part):
            return backend.negate(translate(part, backend))
    assert_never(condition)


Predicate = Callable[[Search], bool]
COMPARE: dict[Comparison, Callable[[Any, Any], Any]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}


class PythonBackend:
    """The reference: conditions as Python predicates over one product's searchable() form."""

    def text_equals(self, key: str, text: str) -> Predicate:
        return lambda search: search.get("s", {}).get(key) == text

    def number_equals(self, key: str, number: float) -> Predicate:
        return lambda search: _number(search, key) == number

    def number_compare(self, key: str, op: Comparison, number: float) -> Predicate:
        return lambda search: (value := _number(search, key)) is not None and bool(COMPARE[op](value, number))

    def has_text(self, key: str) -> Predicate:
        return lambda search: key in search.get("s", {})

    def any_of(self, parts: list[Predicate]) -> Predicate:
        return lambda search: any(part(search) for part in parts)

    def all_of(self, parts: list[Predicate]) -> Predicate:
        return lambda search: all(part(search) for part in parts)

    def negate(self, part: Predicate) -> Predicate:
        return lambda search: not part(search)


def _number(search: Search, key: str) -> float | None:
    value = search.get("n", {}).get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def holds(condition: Condition | None, search: Search) -> bool:
    """Whether CONDITION (None: no condition) holds for a product whose searchable() form is SEARCH."""
    return condition is None or translate(condition, PythonBackend())(search)


def all_of(conditions: Sequence[Condition]) -> Condition | None:
    """CONDITIONS together; None when there are none (every product passes, and some backends have no empty AND)."""
    return AllOf(tuple(conditions)) if conditions else None
