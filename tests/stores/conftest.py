"""Real database servers for the store tests (tests/servers.py), one of each per test session."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.servers import MongoWireServer, PostgresServer

_NAMES = itertools.count()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def mongo_server() -> Iterator[MongoWireServer]:
    server = MongoWireServer()
    yield server
    server.close()


def database_name(request: pytest.FixtureRequest) -> str:
    """A database name unique to this test (and valid everywhere: lower case, digits, underscores)."""
    return f"t{next(_NAMES)}_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:40]


StoreUrl = Callable[[str], str]


@pytest.fixture
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> StoreUrl:
    """store_url(KIND): a URL of a fresh, empty store of that kind for this test (servers start on first use)."""

    def make(kind: str) -> str:
        if kind == "sqlite":
            return f"sqlite:///{tmp_path / 'metadata.db'}"
        if kind == "faiss":
            return f"faiss://{tmp_path / 'faiss'}"
        if kind == "qdrant+local":
            return f"qdrant+local://{tmp_path / 'qdrant'}"
        if kind == "mongodb":
            return str(request.getfixturevalue("mongo_server").url(database_name(request)))
        postgres: PostgresServer = request.getfixturevalue("postgres_server")
        url = postgres.create_database(database_name(request))
        return url if kind == "postgresql" else url.replace("postgresql://", "pgvector://", 1)

    return make
