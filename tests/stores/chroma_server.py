"""The Chroma server that the chromadb wheel ships (`chroma run`, a Rust binary behind a Python entry point) on a
free loopback port; ready when /api/v2/heartbeat answers."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.api.server import free_port


class ChromaServer:
    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="prodmatch-chroma-"))
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._names = 0
        self.start()

    def start(self) -> None:
        command = [str(Path(sys.executable).with_name("chroma")), "run", "--path", str(self.folder / "data")]
        command += ["--host", "127.0.0.1", "--port", str(self.port)]
        with open(self.folder / "log", "ab") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/api/v2/heartbeat", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(
            f"chroma did not answer on 127.0.0.1:{self.port}: {(self.folder / 'log').read_text()[-500:]}"
        )

    def stop(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGTERM)
            self._process.wait(timeout=30)
            self._process = None

    def url(self) -> str:
        """A URL with a collection prefix of its own: every test starts with empty collections."""
        self._names += 1
        return f"chroma://127.0.0.1:{self.port}?prefix=t{self._names}"

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
