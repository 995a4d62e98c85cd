"""The query log in every metadata store: entries come back whole, newest LIMIT by time, oldest first, with their
time in UTC; MongoDB's ?query_log_ttl_days=N expires entries with a TTL index."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from prodmatch.stores.factory import open_metadata_store
from prodmatch.stores.mongo import MongoMetadataStore
from prodmatch.stores.records import QueryLogEntry
from tests.conftest import StoreUrl

START = datetime(2024, 5, 1, 12, 0, 0, 250_000, tzinfo=UTC)  # milliseconds: what MongoDB keeps of a time


def entry(second: int, tz: timezone = UTC) -> QueryLogEntry:
    return QueryLogEntry(
        at=(START + timedelta(seconds=second)).astimezone(tz),
        modality="image" if second % 2 else "text",
        query_hash=f"sha256:{second:04d}",
        top_ids=[f"p{second}", "p0"],
        top_scores=[0.875 - second / 64, 0.5],
        took_ms=1.5 + second,
        is_match=None if second == 0 else second % 2 == 0,
        confidence=None if second == 0 else second / 8,
    )


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "mongodb"])
def test_recent_queries_are_the_newest_by_time_oldest_first(kind: str, store_url: StoreUrl) -> None:
    entries = [entry(0), entry(1), entry(2, timezone(timedelta(hours=2))), entry(3), entry(4)]
    store = open_metadata_store(store_url(kind))
    try:
        store.append_queries([entries[0], entries[3]])
        store.append_queries([])
        store.append_queries([entries[4], entries[1], entries[2]])  # written out of time order
        newest, everything, none = store.recent_queries(3), store.recent_queries(100), store.recent_queries(0)
    finally:
        store.close()
    assert newest == entries[2:]
    assert everything == entries
    assert none == []
    assert all(found.at.utcoffset() == timedelta(0) for found in everything)


@pytest.mark.parametrize(("days", "seconds"), [("2", 172_800), ("0.5", 43_200)])
def test_mongo_query_log_ttl_option_makes_a_ttl_index(days: str, seconds: int, store_url: StoreUrl) -> None:
    url = store_url("mongodb")
    store = MongoMetadataStore(f"{url}?query_log_ttl_days={days}")
    try:
        indexes = store.query_log.index_information()
        ttl = [info for info in indexes.values() if info["key"] == [("at", 1)]]
        assert [info.get("expireAfterSeconds") for info in ttl] == [seconds]
        now = datetime.now(UTC)
        fresh = replace(entry(1), at=now.replace(microsecond=now.microsecond // 1000 * 1000))
        store.append_queries([fresh])
        assert store.recent_queries(5) == [fresh]  # not expired (nx-27017 expires old entries at once)
        assert store.db.name == url.rsplit("/", 1)[1]  # the option is ours, not pymongo's database or option
    finally:
        store.close()


def test_mongo_query_log_without_the_option_never_expires(store_url: StoreUrl) -> None:
    store = MongoMetadataStore(store_url("mongodb"))
    try:
        ttl = [info for info in store.query_log.index_information().values() if info["key"] == [("at", 1)]]
        assert len(ttl) == 1 and "expireAfterSeconds" not in ttl[0]
    finally:
        store.close()
