"""The real app (fake model) served by uvicorn on a free 127.0.0.1 port in a thread, for tests that need a real
HTTP server (schemathesis' requests transport, slow uploads, soak) without exporting a real model."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn

from prodmatch.api.app import create_app
from prodmatch.config import Settings
from tests.api.server import free_port
from tests.fakes import FakeEmbedders


@contextmanager
def live_app(settings: Settings, embedders: FakeEmbedders, **config: object) -> Iterator[str]:
    """The base URL of the app serving SETTINGS' catalog; shut down (lifespan finished) on exit."""
    port = free_port()
    app = create_app(settings, embedders=embedders)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **config))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not server.started or httpx.get(f"{base}/ready", timeout=5).status_code != 200:
            assert thread.is_alive() and time.monotonic() < deadline, "the app did not become ready"
            time.sleep(0.05)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=30)
