"""Choosing the ingest engine: local (in process) or ray; anything else is a clear error, not a fallback."""

from __future__ import annotations

import pytest

from prodmatch.application.ingesting import engine_embedders
from prodmatch.errors import ProdmatchError
from prodmatch.models.factory import create_embedder


def test_engines_are_chosen_by_name() -> None:
    assert engine_embedders("local") is create_embedder
    with pytest.raises(ProdmatchError, match="unknown engine"):
        engine_embedders("spark")
