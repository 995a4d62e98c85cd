"""`prodmatch serve` as a user runs it: a real uvicorn process on 127.0.0.1, queried over HTTP."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from prodmatch.models.bundle import Bundle
from tests.api.server import PRODMATCH, running_server


@pytest.mark.slow
def test_serve_answers_over_http_and_logs_queries(
    shared_data: Path, cli_env: dict[str, str], offline_bundle: Bundle
) -> None:
    prodmatch = PRODMATCH
    catalog = shared_data / "electronics-small" / "metadata.json"
    subprocess.run(
        [*prodmatch, "ingest", str(catalog), "--model", "offline-effnet-minilm"],
        env=cli_env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    with running_server(cli_env) as base:
        body = httpx.post(f"{base}/v1/match/text", json={"text": "noise cancelling headphones", "top_k": 3}).json()
        assert "Sony" in body["matches"][0]["product"]["name"] and len(body["matches"]) == 3
        photo = (catalog.parent / "images" / "Test_image.jpg").read_bytes()
        files = {"image": ("Test_image.jpg", photo, "image/jpeg")}
        assert httpx.post(f"{base}/v1/match/image", files=files).status_code == 200
        assert "prodmatch_requests_total" in httpx.get(f"{base}/metrics").text
        assert httpx.get(f"{base}/docs").status_code == 200
    tail = subprocess.run(
        [*prodmatch, "log", "tail", "--json"], env=cli_env, capture_output=True, text=True, check=True, timeout=120
    )
    entries = json.loads(tail.stdout)
    assert [entry["modality"] for entry in entries] == ["text", "image"]
    assert entries[0]["top_ids"][0] in {"1", "2", "3", "4"} and entries[0]["took_ms"] > 0
