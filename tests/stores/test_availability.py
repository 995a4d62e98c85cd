"""Which driver errors mean "the store is down, answer 503 and retry": the real errors pymongo and qdrant-client
raise for a closed loopback port, and the HTTP statuses that do or do not mean an outage."""

from __future__ import annotations

import httpx
import pytest
from pymongo import MongoClient
from pymongo.errors import ConnectionFailure, DuplicateKeyError, OperationFailure, ServerSelectionTimeoutError
from qdrant_client import QdrantClient
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from prodmatch.config import IndexSettings
from prodmatch.stores import mongo
from prodmatch.stores.availability import unavailable_reason
from prodmatch.stores.factory import open_metadata_store, open_vector_index
from tests.api.server import free_port

SHORT_MS = 300


def test_pymongo_on_a_closed_port_is_an_outage() -> None:
    client: MongoClient[dict[str, object]] = MongoClient(
        f"mongodb://127.0.0.1:{free_port()}/db", serverSelectionTimeoutMS=SHORT_MS, connectTimeoutMS=SHORT_MS
    )
    try:
        with pytest.raises(ConnectionFailure) as raised:
            client["db"]["products"].find_one({})
    finally:
        client.close()
    assert isinstance(raised.value, ServerSelectionTimeoutError)
    assert (unavailable_reason(raised.value) or "").startswith("MongoDB unavailable: ")


def test_opening_a_mongo_store_that_is_down_is_an_outage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mongo, "SERVER_TIMEOUT_MS", SHORT_MS)  # the store's own wait, shortened
    with pytest.raises(ConnectionFailure) as raised:
        open_metadata_store(f"mongodb://127.0.0.1:{free_port()}/db?query_log_ttl_days=1")
    assert (unavailable_reason(raised.value) or "").startswith("MongoDB unavailable: ")


@pytest.mark.parametrize(
    "error",
    [DuplicateKeyError("E11000 duplicate key", 11000), OperationFailure("unknown operator: $bad", 2), ValueError("x")],
)
def test_other_pymongo_errors_are_bugs_not_outages(error: Exception) -> None:
    assert unavailable_reason(error) is None


def test_qdrant_client_on_a_closed_port_is_an_outage() -> None:
    client = QdrantClient(host="127.0.0.1", port=free_port(), timeout=1, check_compatibility=False)
    try:
        with pytest.raises(ResponseHandlingException) as raised:
            client.get_collections()
    finally:
        client.close()
    assert (unavailable_reason(raised.value) or "").startswith("Qdrant unavailable: ")


def test_opening_a_qdrant_index_that_is_down_is_an_outage() -> None:
    with pytest.raises(ResponseHandlingException) as raised:
        open_vector_index(f"qdrant://127.0.0.1:{free_port()}", "image", 4, IndexSettings())
    assert (unavailable_reason(raised.value) or "").startswith("Qdrant unavailable: ")


def qdrant_response(status: int) -> UnexpectedResponse:
    return UnexpectedResponse(status, "reason", b'{"status": {"error": "x"}}', httpx.Headers())


@pytest.mark.parametrize("status", [502, 503, 504])
def test_qdrant_gateway_and_unavailable_statuses_are_outages(status: int) -> None:
    assert (unavailable_reason(qdrant_response(status)) or "").startswith("Qdrant unavailable: ")


@pytest.mark.parametrize("status", [400, 404, 500])
def test_other_qdrant_statuses_are_bugs_not_outages(status: int) -> None:
    assert unavailable_reason(qdrant_response(status)) is None


def test_opening_a_milvus_index_that_is_down_is_an_outage() -> None:
    with pytest.raises(Exception) as raised:
        open_vector_index(f"milvus://127.0.0.1:{free_port()}", "image", 4, IndexSettings())
    assert (unavailable_reason(raised.value) or "").startswith("Milvus unavailable: ")


def test_other_milvus_errors_are_bugs_not_outages() -> None:
    from pymilvus import MilvusException

    assert unavailable_reason(MilvusException(code=1100, message="invalid expression")) is None
