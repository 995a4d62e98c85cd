"""Which driver exceptions mean "the database is unreachable right now" (answer 503 and retry later) rather
than a bug. Drivers are optional, so each is consulted only if it has been imported."""

from __future__ import annotations

import sys

from prodmatch.errors import ModelServerUnavailableError, StoreUnavailableError


def unavailable_reason(exc: BaseException) -> str | None:
    """A short reason when EXC is a store or model server being down or unreachable, else None."""
    if isinstance(exc, StoreUnavailableError | ModelServerUnavailableError):
        return str(exc)
    for check in (_sqlalchemy, _pymongo, _qdrant, _milvus):
        if (reason := check(exc)) is not None:
            return reason
    return None


def _sqlalchemy(exc: BaseException) -> str | None:
    if "sqlalchemy" not in sys.modules:
        return None
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    if isinstance(exc, OperationalError | InterfaceError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    ):
        return f"SQL database unavailable: {str(exc.orig or exc).strip().splitlines()[0]}"
    return None


def _pymongo(exc: BaseException) -> str | None:
    if "pymongo" not in sys.modules:
        return None
    from pymongo.errors import ConnectionFailure

    if isinstance(exc, ConnectionFailure):  # AutoReconnect, NetworkTimeout and ServerSelectionTimeoutError too
        return f"MongoDB unavailable: {str(exc).splitlines()[0][:200]}"
    return None


def _qdrant(exc: BaseException) -> str | None:
    if "qdrant_client" not in sys.modules:
        return None
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    if isinstance(exc, ResponseHandlingException) or (
        isinstance(exc, UnexpectedResponse) and exc.status_code in (502, 503, 504)
    ):
        return f"Qdrant unavailable: {exc}"
    return None


def _milvus(exc: BaseException) -> str | None:
    if "pymilvus" not in sys.modules:
        return None
    from pymilvus import MilvusException, MilvusUnavailableException

    # code 2: pymilvus's CONNECT_FAILED, raised while the server cannot be reached (and while it reconnects)
    if isinstance(exc, MilvusUnavailableException) or (isinstance(exc, MilvusException) and exc.code == 2):
        return f"Milvus unavailable: {exc.message}"
    return None
