"""Store URLs: every scheme opens its store; bad URLs and missing drivers fail with what to do."""

from __future__ import annotations

import importlib.util

import pytest

from prodmatch.config import IndexSettings
from prodmatch.errors import StoreConfigError
from prodmatch.stores.factory import open_metadata_store, open_vector_index
from tests.conftest import StoreUrl


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "mongodb"])
def test_every_metadata_scheme_opens_a_working_store(kind: str, store_url: StoreUrl) -> None:
    store = open_metadata_store(store_url(kind))
    try:
        store.set_meta("probe", {"kind": kind})
        assert store.get_meta("probe") == {"kind": kind} and store.count() == 0
    finally:
        store.close()


@pytest.mark.parametrize("kind", ["faiss", "pgvector", "qdrant+local"])
def test_every_vector_scheme_opens_an_empty_index(kind: str, store_url: StoreUrl) -> None:
    index = open_vector_index(store_url(kind), "image", 8, IndexSettings())
    try:
        assert len(index) == 0 and index.ids().tolist() == []
    finally:
        index.close()


@pytest.mark.parametrize("kind", ["pgvector", "qdrant+local"])
def test_an_index_made_for_other_dimensions_is_refused(kind: str, store_url: StoreUrl) -> None:
    url = store_url(kind)
    open_vector_index(url, "image", 8, IndexSettings()).close()
    with pytest.raises(StoreConfigError, match="8-d vectors; this model's are 16-d"):
        open_vector_index(url, "image", 16, IndexSettings())


@pytest.mark.parametrize("url", ["redis://localhost/0", "no-scheme-at-all"])
def test_unknown_metadata_urls_name_the_valid_schemes(url: str) -> None:
    with pytest.raises(StoreConfigError, match="scheme"):
        open_metadata_store(url)


def test_unknown_vector_urls_name_the_valid_schemes() -> None:
    with pytest.raises(StoreConfigError, match=r"faiss, pgvector, qdrant.*milvus"):
        open_vector_index("weaviate://localhost", "image", 8, IndexSettings())


@pytest.mark.parametrize(
    ("url", "missing", "extra"),
    [
        ("mongodb://127.0.0.1:1/db", "pymongo", "mongo"),
        ("postgresql://u@127.0.0.1:1/db", "psycopg", "postgres"),
    ],
)
def test_a_missing_metadata_driver_names_the_pip_extra(
    url: str, missing: str, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The drivers are installed here, so their absence can only be simulated.
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == missing else real_find_spec(name))
    with pytest.raises(StoreConfigError, match=rf"pip install 'prodmatch\[{extra}\]'"):
        open_metadata_store(url)


def test_a_missing_vector_driver_names_the_pip_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "qdrant_client" else real_find_spec(name)
    )
    with pytest.raises(StoreConfigError, match=r"pip install 'prodmatch\[qdrant\]'"):
        open_vector_index("qdrant://localhost:6333", "image", 8, IndexSettings())
