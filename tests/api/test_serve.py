"""`prodmatch serve` as a user runs it: a real uvicorn process on 127.0.0.1, queried over HTTP."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from prodmatch.models.bundle import Bundle


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_serve_answers_over_http_and_logs_queries(
    shared_data: Path, cli_env: dict[str, str], offline_bundle: Bundle
) -> None:
    prodmatch = [sys.executable, "-m", "prodmatch"]
    catalog = shared_data / "electronics-small" / "metadata.json"
    subprocess.run(
        [*prodmatch, "ingest", str(catalog), "--model", "offline-effnet-minilm"],
        env=cli_env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    port = free_port()
    server = subprocess.Popen(
        [*prodmatch, "serve", "--port", str(port)], env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail("server did not become ready")
        body = httpx.post(f"{base}/v1/match/text", json={"text": "noise cancelling headphones", "top_k": 3}).json()
        assert "Sony" in body["matches"][0]["product"]["name"] and len(body["matches"]) == 3
        photo = (catalog.parent / "images" / "Test_image.jpg").read_bytes()
        files = {"image": ("Test_image.jpg", photo, "image/jpeg")}
        assert httpx.post(f"{base}/v1/match/image", files=files).status_code == 200
        assert "prodmatch_requests_total" in httpx.get(f"{base}/metrics").text
        assert httpx.get(f"{base}/docs").status_code == 200
    finally:
        server.send_signal(signal.SIGINT)  # graceful: the lifespan flushes the query log
        server.wait(timeout=60)
    tail = subprocess.run(
        [*prodmatch, "log", "tail", "--json"], env=cli_env, capture_output=True, text=True, check=True, timeout=120
    )
    entries = json.loads(tail.stdout)
    assert [entry["modality"] for entry in entries] == ["text", "image"]
    assert entries[0]["top_ids"][0] in {"1", "2", "3", "4"} and entries[0]["took_ms"] > 0
