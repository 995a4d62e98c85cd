"""Where a catalog's data goes: the configured location, or a private one that the environment cannot redirect."""

from __future__ import annotations

from pathlib import Path

import pytest

from prodmatch.config import CatalogLocation, Settings


def test_the_configured_location_takes_store_urls_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PRODMATCH_METADATA_URL", "postgresql://app:secret@db/catalog")
    location = Settings(data_dir=tmp_path).location()
    assert location.metadata_url == "postgresql://app:secret@db/catalog"
    assert location.vectors_url == f"faiss://{tmp_path.resolve()}"
    assert "secret" not in location.describe() and "app:***@db" in location.describe()


def test_an_embedded_location_ignores_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PRODMATCH_METADATA_URL", "postgresql://app@db/catalog")
    monkeypatch.setenv("PRODMATCH_VECTORS_URL", "qdrant://qdrant:6333")
    location = CatalogLocation.embedded(tmp_path)
    assert location.metadata_url == f"sqlite:///{tmp_path.resolve() / 'metadata.db'}"
    assert location.vectors_url == f"faiss://{tmp_path.resolve()}"
    assert location.is_embedded_in_folder and str(tmp_path.resolve()) in location.describe()
    assert not Settings(data_dir=tmp_path).location().is_embedded_in_folder
