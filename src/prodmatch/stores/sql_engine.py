"""What the SQL stores share: engines (driver choice, SQLite pragmas), the declarative base and column types."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Integer, create_engine, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase

JSON_DOCUMENT = JSON().with_variant(JSONB(), "postgresql")  # JSONB: indexable (GIN) and compared by value
# 64-bit ids on PostgreSQL; on SQLite only "INTEGER PRIMARY KEY" is the auto-incrementing rowid (64-bit anyway)
ROW_ID = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """Every table of the SQL metadata store (the Alembic migrations own their schema)."""


def utc(moment: datetime) -> datetime:
    """MOMENT in UTC, as every store gives times back. SQLite keeps no offset: what it stored was UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def sqlalchemy_url(url: str) -> str:
    """postgresql://... means psycopg 3 (SQLAlchemy's default PostgreSQL driver is psycopg2)."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str) -> Engine:
    # pre-ping: a connection the server dropped (restart, failover) is replaced instead of failing a request
    engine = create_engine(sqlalchemy_url(url), pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _enable_sqlite_pragmas)
    return engine


def _enable_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers (a server) run while an ingest writes; foreign keys make deletes cascade."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
