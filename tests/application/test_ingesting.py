"""Choosing the ingest engine: local (in process) or ray; anything else is a clear error, not a fallback."""

from __future__ import annotations

import pytest

from prodmatch.application.ingesting import engine_embedders
from prodmatch.errors import ProdmatchError


def test_engines_are_chosen_by_name() -> None:
    assert engine_embedders("local") is None  # the catalog's own model, in process
    with pytest.raises(ProdmatchError, match="unknown engine"):
        engine_embedders("spark")
