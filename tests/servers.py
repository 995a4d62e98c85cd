"""Real servers for the tests, on 127.0.0.1, started and stopped by the tests.

PostgreSQL 16 with pgvector: the binaries the PyPI package `pgserver` ships (Debian's PostgreSQL 15 has no
pgvector). PostgreSQL refuses to run as root, so as root the cluster belongs to a system user made for it.
MongoDB: no `mongod` installs here; `nx-27017` (PyPI) speaks MongoDB's wire protocol over SQLite and is what
pymongo talks to in these tests.
Redis: Debian's `redis-server` (scripts/setup.sh installs it), without persistence.
Triton: the `tritonserver` binary that the PyPI package `nvidia-pytriton` ships (CPU; Python backend only).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import httpx

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


class OwnedProcess:
    """A server process this test run started, with its files in a temporary folder: stopped with SIGTERM (within
    stop_within_s) and its folder removed on close()."""

    folder: Path
    _process: subprocess.Popen[bytes] | None
    stop_within_s = 30.0

    def stop(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGTERM)
            self._process.wait(timeout=self.stop_within_s)
            self._process = None

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


class ProcessServer(OwnedProcess):
    """A server process on a free loopback port with its files in a temporary folder (log included): stop() and
    start() again keep the port and the data, which is what the outage-and-recovery tests need."""

    folder_prefix = "prodmatch-server-"
    ready_within_s = 60.0

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix=self.folder_prefix))
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self.start()

    def command(self) -> list[str]:
        raise NotImplementedError

    def wait_until_ready(self) -> None:
        _wait_for_port(self.port, self.ready_within_s)

    def start(self) -> None:
        with open(self.folder / "log", "ab") as log:
            self._process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)
        self.wait_until_ready()

    def log_tail(self, chars: int = 500) -> str:
        return (self.folder / "log").read_text(errors="replace")[-chars:]


class CollectionServer(ProcessServer):
    """A vector-engine server (Milvus, Chroma) handing each test a URL with a collection prefix of its own: every
    test starts with empty collections on one server started once."""

    scheme = ""

    def __init__(self) -> None:
        self._names = 0
        super().__init__()

    def url(self) -> str:
        self._names += 1
        return f"{self.scheme}://127.0.0.1:{self.port}?prefix=t{self._names}"


class MongoWireServer(ProcessServer):
    """nx-27017 on a free loopback port, one SQLite file per database in a temporary folder."""

    folder_prefix = "prodmatch-nx-"
    ready_within_s = 30.0

    def command(self) -> list[str]:
        (self.folder / "data").mkdir(exist_ok=True)
        return [
            str(Path(sys.executable).with_name("nx-27017")),
            *("--data-dir", str(self.folder / "data"), "--host", "127.0.0.1", "-p", str(self.port)),
            *("--log-file", str(self.folder / "server.log"), "--pid-file", str(self.folder / "pid")),
        ]

    def url(self, database: str) -> str:
        return f"mongodb://127.0.0.1:{self.port}/{database}"


class RedisServer:
    """Debian's redis-server on a free loopback port, nothing written to disk."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: apt-get install redis-server (scripts/setup.sh)")
        self.port = free_port()
        command = [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"]
        self._process: subprocess.Popen[bytes] | None = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait_for_port(self.port, 30)

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def close(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGTERM)
            self._process.wait(timeout=30)
            self._process = None


def _ensure_system_user(name: str) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", name], check=True)


REPO = Path(__file__).resolve().parents[1]


def triton_environment() -> Path:
    """The virtual environment Triton's Python backend runs in (made by scripts/setup.sh): nvidia-pytriton for
    the server binary, numpy < 2 (the backend stub in that build reads tensors with numpy 1's ABI; with numpy 2
    it answers empty tensors) and the same onnxruntime as the project's environment."""
    return Path(os.environ.get("PRODMATCH_TRITON_ENV", REPO / ".venv-triton"))


def _pytriton_home() -> Path:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    home = triton_environment() / "lib" / version / "site-packages" / "pytriton"
    if not home.is_dir():
        raise RuntimeError(f"no nvidia-pytriton in {triton_environment()} (scripts/setup.sh makes it)")
    return home


class TritonServer(OwnedProcess):
    """tritonserver serving REPOSITORY on free loopback ports (HTTP, gRPC).

    The nvidia-pytriton build has only the Python backend, so the repository is exported with
    `--backend python` (model.py runs the same ONNX graph with ONNX Runtime). As pytriton itself does, the
    backend folder gets the Python backend stub for this interpreter; the stub and server need this Python's
    libpython and the libraries bundled in the wheel on LD_LIBRARY_PATH, and the backend environment's
    `python` first on PATH so model.py imports from it.
    """

    stop_within_s = 60.0

    def __init__(self, repository: Path) -> None:
        self.repository = repository
        self.folder = Path(tempfile.mkdtemp(prefix="prodmatch-triton-"))
        self.http_port, self.grpc_port, self.metrics_port = free_port(), free_port(), free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._backends = self._prepare_backends()
        self.start()

    def _prepare_backends(self) -> Path:
        home = _pytriton_home() / "tritonserver"
        python = self.folder / "backends" / "python"
        python.mkdir(parents=True)
        for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
            shutil.copy(home / "backends" / "python" / name, python / name)
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        shutil.copy(home / "python_backend_stubs" / version / "triton_python_backend_stub", python)
        return self.folder / "backends"

    def _environment(self) -> dict[str, str]:
        libraries = [str(sysconfig.get_config_var("LIBDIR")), str(_pytriton_home().parent / "nvidia_pytriton.libs")]
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = ":".join([*libraries, env.get("LD_LIBRARY_PATH", "")]).rstrip(":")
        env["PATH"] = f"{triton_environment() / 'bin'}:{env.get('PATH', '')}"
        return env

    def start(self) -> None:
        command = [
            str(_pytriton_home() / "tritonserver" / "bin" / "tritonserver"),
            f"--model-repository={self.repository}",
            f"--backend-directory={self._backends}",
            f"--http-port={self.http_port}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-port={self.metrics_port}",
            "--exit-timeout-secs=5",
        ]
        log = open(self.folder / "log", "ab")  # noqa: SIM115 - the server writes to it until stopped
        self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self._environment())
        log.close()
        self._wait_until_ready(120)

    def _wait_until_ready(self, within_s: float) -> None:
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"tritonserver exited ({self._process.returncode}):\n{self.log_tail()}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.http_port}/v2/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"tritonserver not ready after {within_s} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join((self.folder / "log").read_text(errors="replace").splitlines()[-lines:])

    def url(self, name: str, protocol: str = "grpc") -> str:
        if protocol == "grpc":
            return f"triton://127.0.0.1:{self.grpc_port}/{name}"
        return f"triton+http://127.0.0.1:{self.http_port}/{name}"
