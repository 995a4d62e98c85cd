"""The Chroma server that the chromadb wheel ships (`chroma run`, a Rust binary behind a Python entry point) on a
free loopback port; ready when /api/v2/heartbeat answers."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx

from tests.servers import CollectionServer


class ChromaServer(CollectionServer):
    folder_prefix = "prodmatch-chroma-"
    scheme = "chroma"
    ready_within_s = 90.0

    def command(self) -> list[str]:
        command = [str(Path(sys.executable).with_name("chroma")), "run", "--path", str(self.folder / "data")]
        return [*command, "--host", "127.0.0.1", "--port", str(self.port)]

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.ready_within_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/api/v2/heartbeat", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(f"chroma did not answer on 127.0.0.1:{self.port}: {self.log_tail()}")
