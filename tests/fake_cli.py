"""`python -m tests.fake_cli ARGS`: the real prodmatch command line (its entry point, options, use cases and stores)
with the fake model of tests/fakes.py, for tests that must run the CLI as a separate process (to kill it) without
exporting a real model. PRODMATCH_FAKE_DELAY_S slows every model call, so a run lasts long enough to be
interrupted at chosen points."""

from __future__ import annotations

import functools
import os

from prodmatch.api import app as app_module
from prodmatch.cli import common, main
from prodmatch.composition import open_catalog
from prodmatch.config import Settings
from prodmatch.models.bundle import Bundle
from tests.fakes import FakeEmbedder, FakeEmbedders


class SlowFakeEmbedders(FakeEmbedders):
    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self.delay_s = delay_s

    def __call__(self, bundle: Bundle, settings: Settings) -> FakeEmbedder:
        embedder = super().__call__(bundle, settings)
        embedder.delay_s = self.delay_s
        return embedder


if __name__ == "__main__":
    embedders = SlowFakeEmbedders(float(os.environ.get("PRODMATCH_FAKE_DELAY_S", "0")))
    common.open_catalog = functools.partial(open_catalog, embedders=embedders)  # type: ignore[assignment]
    app_module.create_app = functools.partial(app_module.create_app, embedders=embedders)  # prodmatch serve's app
    main()
