"""Store fixtures for the vector engines that only tests/stores uses (Milvus, Chroma)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import StoreUrl
from tests.stores.chroma_server import ChromaServer
from tests.stores.milvus_server import MilvusServer


@pytest.fixture(scope="session")
def milvus_server() -> Iterator[MilvusServer]:
    server = MilvusServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def chroma_server() -> Iterator[ChromaServer]:
    server = ChromaServer()
    yield server
    server.close()


@pytest.fixture
def store_url(store_url: StoreUrl, request: pytest.FixtureRequest) -> StoreUrl:
    """tests/conftest.py's store_url, plus "milvus" and "chroma" (each server starts on first use)."""

    def make(kind: str) -> str:
        if kind in ("milvus", "chroma"):
            server: MilvusServer | ChromaServer = request.getfixturevalue(f"{kind}_server")
            return server.url()
        return store_url(kind)

    return make
