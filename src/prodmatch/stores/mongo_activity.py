"""What happens around a MongoDB catalog, beside its products: the query log, feedback on answers, and API keys.
Part of MongoMetadataStore (a mixin sharing its database)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from pymongo import DESCENDING
from pymongo.collection import Collection
from pymongo.database import Database

from prodmatch.stores.records import ApiKey, Feedback, QueryLogEntry

Document = dict[str, Any]


class MongoActivity:
    """Query log, feedback and API keys in the store's database (collections query_log, feedback, api_keys)."""

    db: Database[Document]
    query_log: Collection[Document]

    def _index_activity(self, query_log_ttl_days: str | None) -> None:
        if query_log_ttl_days:
            self.query_log.create_index("at", expireAfterSeconds=int(float(query_log_ttl_days) * 86400))
        else:
            self.query_log.create_index("at")
        self.query_log.create_index("query_id")
        self.db["feedback"].create_index("query_id")
        self.db["feedback"].create_index("product_id")

    def append_queries(self, entries: Sequence[QueryLogEntry]) -> None:
        if entries:
            self.query_log.insert_many([asdict(entry) for entry in entries])

    def recent_queries(self, limit: int) -> list[QueryLogEntry]:
        """The newest LIMIT entries by time, oldest first."""
        if limit <= 0:  # limit(0) would mean no limit to MongoDB
            return []
        docs = list(self.query_log.find({}, {"_id": 0}).sort([("at", DESCENDING), ("_id", DESCENDING)]).limit(limit))
        return [QueryLogEntry(**doc) for doc in reversed(docs)]

    def find_query(self, query_id: str) -> QueryLogEntry | None:
        doc = self.query_log.find_one({"query_id": query_id}, {"_id": 0})
        return None if doc is None else QueryLogEntry(**doc)

    def add_feedback(self, feedback: Feedback) -> None:
        self.db["feedback"].insert_one(asdict(feedback))

    def feedback(self) -> list[Feedback]:
        """Every verdict, oldest first."""
        return [Feedback(**doc) for doc in self.db["feedback"].find({}, {"_id": 0}).sort([("at", 1), ("_id", 1)])]

    def add_api_key(self, key: ApiKey) -> None:
        document = asdict(key)
        self.db["api_keys"].insert_one({"_id": document.pop("id"), **document})

    def api_keys(self) -> list[ApiKey]:
        return [_key(doc) for doc in self.db["api_keys"].find().sort("created_at", 1)]

    def find_api_key(self, key_id: str) -> ApiKey | None:
        doc = self.db["api_keys"].find_one({"_id": key_id})
        return None if doc is None else _key(doc)

    def revoke_api_key(self, key_id: str, at: datetime) -> bool:
        """Mark KEY_ID revoked; False when there is no such active key."""
        done = self.db["api_keys"].update_one({"_id": key_id, "revoked_at": None}, {"$set": {"revoked_at": at}})
        return done.modified_count == 1


def _key(doc: Document) -> ApiKey:
    return ApiKey(
        doc["_id"], doc["name"], doc["scope"], doc["salt"], doc["digest"], doc["created_at"], doc["revoked_at"]
    )
