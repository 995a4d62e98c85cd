"""milvus-lite's gRPC server (`milvus-lite server`, PyPI milvus-lite) on a free loopback port: it speaks the Milvus
protocol that pymilvus's MilvusClient uses against a Milvus standalone or cluster. Its default host is 0.0.0.0,
so --host 127.0.0.1 is always passed."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.servers import CollectionServer


class MilvusServer(CollectionServer):
    folder_prefix = "prodmatch-milvus-"
    scheme = "milvus"

    def command(self) -> list[str]:
        command = [str(Path(sys.executable).with_name("milvus-lite")), "server"]
        return [*command, "--data-dir", str(self.folder / "data"), "--host", "127.0.0.1", "--port", str(self.port)]
