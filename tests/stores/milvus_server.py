"""milvus-lite's gRPC server (`milvus-lite server`, PyPI milvus-lite) on a free loopback port: it speaks the Milvus
protocol that pymilvus's MilvusClient uses against a Milvus standalone or cluster. Its default host is 0.0.0.0,
so --host 127.0.0.1 is always passed."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.api.server import free_port
from tests.servers import _wait_for_port


class MilvusServer:
    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="prodmatch-milvus-"))
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._names = 0
        self.start()

    def start(self) -> None:
        command = [str(Path(sys.executable).with_name("milvus-lite")), "server"]
        command += ["--data-dir", str(self.folder / "data"), "--host", "127.0.0.1", "--port", str(self.port)]
        with open(self.folder / "log", "ab") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        _wait_for_port(self.port, 60)

    def stop(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGTERM)
            self._process.wait(timeout=30)
            self._process = None

    def url(self) -> str:
        """A URL with a collection prefix of its own: every test starts with empty collections."""
        self._names += 1
        return f"milvus://127.0.0.1:{self.port}?prefix=t{self._names}"

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
