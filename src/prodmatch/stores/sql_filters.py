"""Filters as SQL over a JSON column holding `searchable(attributes)` (JSON on SQLite, JSONB on PostgreSQL):
shared by the SQL metadata store and the pgvector index. filters.py says what a filter means; this only writes
each condition (conditions.py) in SQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Float, String, and_, func, not_, or_, select, type_coerce
from sqlalchemy.dialects.postgresql import JSONB

from prodmatch.stores.conditions import COMPARE, Comparison, translate
from prodmatch.stores.filters import Filter, condition_of

Clause = ColumnElement[bool]


class SqlBackend:
    """Each primitive is two-valued (a missing key is false, not NULL), so a negation keeps products without
    the key out only where the condition says so. On PostgreSQL equality is JSONB containment (@>): the GIN
    index on the column answers it."""

    def __init__(self, column: Any, dialect: str) -> None:
        self.column = column
        self.postgres = dialect == "postgresql"

    def _value(self, part: str, key: str) -> Any:
        """KEY's text (PART "s") or number ("n"); NULL when the product has none."""
        numeric = part == "n"
        if self.postgres:  # one -> step per key, bound as text (a path is an unquoted array literal there)
            field = self.column[part][key]
        elif '"' in key or "\\" in key:  # no SQLite path can name such a key: find it among the members
            members = func.json_each(self.column, f"$.{part}").table_valued("key", "value")
            found = select(members.c.value).where(members.c.key == key).scalar_subquery()
            return type_coerce(found, Float() if numeric else String())
        else:
            field = self.column[(part, key)]
        return field.as_float() if numeric else field.as_string()

    def _contains(self, part: str, key: str, value: object) -> Clause:
        return type_coerce(self.column, JSONB).contains({part: {key: value}})

    def text_equals(self, key: str, text: str) -> Clause:
        if self.postgres:
            return self._contains("s", key, text)
        value = self._value("s", key)
        return and_(value.is_not(None), value == text)

    def number_equals(self, key: str, number: float) -> Clause:
        if self.postgres:
            return self._contains("n", key, number)
        value = self._value("n", key)
        return and_(value.is_not(None), value == number)

    def number_compare(self, key: str, op: Comparison, number: float) -> Clause:
        value = self._value("n", key)
        present: Clause = value.is_not(None)
        return and_(present, COMPARE[op](value, number))

    def has_text(self, key: str) -> Clause:
        present: Clause = self._value("s", key).is_not(None)
        return present

    def any_of(self, parts: list[Clause]) -> Clause:
        return or_(*parts)

    def all_of(self, parts: list[Clause]) -> Clause:
        return and_(*parts)

    def negate(self, part: Clause) -> Clause:
        return not_(part)


def sql_conditions(column: Any, filters: Sequence[Filter], dialect: str) -> list[Clause]:
    """The WHERE clauses (none or one) selecting the rows whose COLUMN passes FILTERS."""
    condition = condition_of(filters)
    return [] if condition is None else [translate(condition, SqlBackend(column, dialect))]
