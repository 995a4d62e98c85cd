"""Run `prodmatch serve` as a real process on a free loopback port for a test."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

PRODMATCH = [sys.executable, "-m", "prodmatch"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(env: dict[str, str], ready_within_s: float = 120) -> Iterator[str]:
    """The base URL of a ready server; stopped with SIGINT (graceful: the lifespan flushes the query log)."""
    port = free_port()
    process = subprocess.Popen(
        [*PRODMATCH, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_within_s
        while not _ready(base):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"prodmatch serve did not become ready (exit code {process.poll()})")
            time.sleep(0.2)
        yield base
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/ready", timeout=2).status_code == 200
    except httpx.TransportError:
        return False
