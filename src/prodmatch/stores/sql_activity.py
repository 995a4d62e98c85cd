"""What happens around a SQL catalog, beside its products: the query log, feedback on answers, and API keys.
Part of SqlMetadataStore (a mixin sharing its sessions); the schema is owned by the Alembic migrations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, CursorResult, DateTime, Float, ForeignKey, String, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from prodmatch.stores.records import ApiKey, Feedback, QueryLogEntry
from prodmatch.stores.sql_engine import JSON_DOCUMENT, ROW_ID, Base, utc


class QueryLogRow(Base):
    """One answered match request."""

    __tablename__ = "query_log"
    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    modality: Mapped[str] = mapped_column(String(16))
    query_hash: Mapped[str] = mapped_column(String(80))
    top_ids: Mapped[list[str]] = mapped_column(JSON_DOCUMENT)
    top_scores: Mapped[list[float]] = mapped_column(JSON_DOCUMENT)
    took_ms: Mapped[float] = mapped_column(Float)
    is_match: Mapped[bool | None] = mapped_column(Boolean)
    confidence: Mapped[float | None] = mapped_column(Float)
    query_id: Mapped[str] = mapped_column(String(64), default="", index=True)
    request_id: Mapped[str] = mapped_column(String(128), default="")
    photo_sha: Mapped[str | None] = mapped_column(String(64))


class FeedbackRow(Base):
    """A verdict on one product for one answered query."""

    __tablename__ = "feedback"
    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True, autoincrement=True)
    query_id: Mapped[str] = mapped_column(String(64), index=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), index=True)
    is_match: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApiKeyRow(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    scope: Mapped[str] = mapped_column(String(16))
    salt: Mapped[str] = mapped_column(String(64))
    digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SqlActivity:
    """Query log, feedback and API keys in the metadata store's database."""

    _session: sessionmaker[Session]

    def append_queries(self, entries: Sequence[QueryLogEntry]) -> None:
        with self._session.begin() as session:
            session.add_all(QueryLogRow(**(asdict(entry) | {"at": utc(entry.at)})) for entry in entries)

    def recent_queries(self, limit: int) -> list[QueryLogEntry]:
        """The newest LIMIT entries by time, oldest first."""
        newest = select(QueryLogRow).order_by(QueryLogRow.at.desc(), QueryLogRow.id.desc()).limit(max(limit, 0))
        with self._session() as session:
            rows = list(session.scalars(newest))
        return [_entry(row) for row in reversed(rows)]

    def find_query(self, query_id: str) -> QueryLogEntry | None:
        with self._session() as session:
            row = session.scalars(select(QueryLogRow).where(QueryLogRow.query_id == query_id).limit(1)).first()
        return None if row is None else _entry(row)

    def add_feedback(self, feedback: Feedback) -> None:
        with self._session.begin() as session:
            session.add(FeedbackRow(**(asdict(feedback) | {"at": utc(feedback.at)})))

    def feedback(self) -> list[Feedback]:
        """Every verdict, oldest first."""
        with self._session() as session:
            rows = session.scalars(select(FeedbackRow).order_by(FeedbackRow.at, FeedbackRow.id))
            return [Feedback(r.query_id, r.product_id, r.is_match, utc(r.at)) for r in rows]

    def add_api_key(self, key: ApiKey) -> None:
        with self._session.begin() as session:
            session.add(ApiKeyRow(**asdict(key)))

    def api_keys(self) -> list[ApiKey]:
        with self._session() as session:
            return [_key(row) for row in session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at))]

    def find_api_key(self, key_id: str) -> ApiKey | None:
        with self._session() as session:
            row = session.get(ApiKeyRow, key_id)
            return None if row is None else _key(row)

    def revoke_api_key(self, key_id: str, at: datetime) -> bool:
        """Mark KEY_ID revoked; False when there is no such active key."""
        active = (ApiKeyRow.id == key_id) & ApiKeyRow.revoked_at.is_(None)
        with self._session.begin() as session:
            done: CursorResult[Any] = session.execute(update(ApiKeyRow).where(active).values(revoked_at=utc(at)))  # type: ignore[assignment]
            return done.rowcount == 1


def _entry(row: QueryLogRow) -> QueryLogEntry:
    return QueryLogEntry(
        utc(row.at),
        row.modality,
        row.query_hash,
        row.top_ids,
        row.top_scores,
        row.took_ms,
        row.is_match,
        row.confidence,
        row.query_id,
        row.request_id,
        row.photo_sha,
    )


def _key(row: ApiKeyRow) -> ApiKey:
    revoked = None if row.revoked_at is None else utc(row.revoked_at)
    return ApiKey(row.id, row.name, row.scope, row.salt, row.digest, utc(row.created_at), revoked)
