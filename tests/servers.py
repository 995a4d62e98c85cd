"""Real database servers for the tests, on 127.0.0.1, started and stopped by the test session.

PostgreSQL 16 with pgvector: the binaries the PyPI package `pgserver` ships (Debian's PostgreSQL 15 has no
pgvector). PostgreSQL refuses to run as root, so as root the cluster belongs to a system user made for it.
MongoDB: no `mongod` installs here; `nx-27017` (PyPI) speaks MongoDB's wire protocol over SQLite and is what
pymongo talks to in these tests.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.api.server import free_port

POSTGRES_USER = "prodmatch-pg"


def _postgres_bin() -> Path:
    import pgserver._commands  # the test extra installs it; imported here so collection never needs it

    return Path(pgserver._commands.POSTGRES_BIN_PATH)


def _wait_for_port(port: int, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {within_s} s")


class PostgresServer:
    """A throw-away PostgreSQL cluster with trust authentication on a free loopback port."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="prodmatch-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            _ensure_system_user(POSTGRES_USER)
            self.folder.chmod(0o755)
            shutil.chown(self.folder, POSTGRES_USER)
            self._as_user = ["runuser", "-u", POSTGRES_USER, "--"]
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        self.start()

    def _run(self, program: str, *args: str) -> None:
        command = [*self._as_user, str(_postgres_bin() / program), *args]
        subprocess.run(command, check=True, capture_output=True, cwd=self.folder)

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.folder} -c fsync=off -c max_connections=200"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"), "-w", "start")
        _wait_for_port(self.port, 30)

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database with pgvector enabled; returns its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        with psycopg.connect(self.url(name), autocommit=True) as connection:
            connection.execute("CREATE EXTENSION IF NOT EXISTS vector")
        return self.url(name)

    def running(self) -> bool:
        command = [*self._as_user, str(_postgres_bin() / "pg_ctl"), "-D", str(self.data), "status"]
        return subprocess.run(command, capture_output=True, cwd=self.folder).returncode == 0

    def close(self) -> None:
        try:
            if self.running():
                self.stop()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


class MongoWireServer:
    """nx-27017 on a free loopback port, one SQLite file per database in a temporary folder."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="prodmatch-nx-"))
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        command = [
            str(Path(sys.executable).with_name("nx-27017")),
            *("--data-dir", str(self.folder / "data"), "--host", "127.0.0.1", "-p", str(self.port)),
            *("--log-file", str(self.folder / "log"), "--pid-file", str(self.folder / "pid")),
        ]
        (self.folder / "data").mkdir(exist_ok=True)
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for_port(self.port, 30)

    def stop(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGTERM)
            self._process.wait(timeout=30)
            self._process = None

    def url(self, database: str) -> str:
        return f"mongodb://127.0.0.1:{self.port}/{database}"

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def _ensure_system_user(name: str) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", name], check=True)
