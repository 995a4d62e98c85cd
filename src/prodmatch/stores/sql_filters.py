"""Filters (filters.py) as SQL over a column holding `searchable(attributes)`: shared by the SQL metadata store
and the pgvector index, so both select exactly what MongoDB and Qdrant select."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, or_, type_coerce
from sqlalchemy.dialects.postgresql import JSONB

from prodmatch.stores.filters import Filter


def filter_condition(column: Any, item: Filter, dialect: str) -> ColumnElement[bool]:
    """SQL for ITEM on COLUMN (JSON on SQLite, JSONB on PostgreSQL)."""
    number = float(item.number) if item.number is not None else None
    if item.op in ("=", "!="):
        same = _equals(column, item, number, dialect)
        if item.op == "=":
            return same
        present = column[("s", item.key)].as_string().is_not(None)
        return and_(present, ~same)
    value = column[("n", item.key)].as_float()
    compare: dict[str, ColumnElement[bool]] = {
        ">=": value >= number,
        "<=": value <= number,
        ">": value > number,
        "<": value < number,
    }
    return and_(value.is_not(None), compare[item.op])


def _equals(column: Any, item: Filter, number: float | None, dialect: str) -> ColumnElement[bool]:
    if dialect == "postgresql":  # containment (@>) is what a GIN index on the JSONB column answers
        document = type_coerce(column, JSONB)
        same = document.contains({"s": {item.key: item.value.lower()}})
        return or_(same, document.contains({"n": {item.key: number}})) if number is not None else same
    same = column[("s", item.key)].as_string() == item.value.lower()
    return or_(same, column[("n", item.key)].as_float() == number) if number is not None else same
