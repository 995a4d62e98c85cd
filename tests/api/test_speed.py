"""Speed features of the API: per-stage timings (?timings=1, /metrics), the query cache shared through Redis by
two apps (as by two workers), and `prodmatch serve --workers 2` as real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from prodmatch.api.app import create_app
from prodmatch.application.querying import STAGES
from prodmatch.config import Settings
from prodmatch.models.bundle import Bundle
from tests.api.server import PRODMATCH, _ready, free_port
from tests.api.test_app import metric, photo
from tests.fakes import FakeEmbedders
from tests.servers import RedisServer


@pytest.fixture
def client(fake_myntra: Settings, fake_embedders: FakeEmbedders) -> Iterator[TestClient]:
    with TestClient(create_app(fake_myntra, embedders=fake_embedders)) as test_client:
        yield test_client


def test_timings_are_in_the_answer_only_when_asked(client: TestClient, myntra: Path) -> None:
    timed = client.post("/v1/match/image?timings=1", files=photo(myntra, "10054"))
    plain = client.post("/v1/match/image", files=photo(myntra, "10054"))  # from the cache
    assert plain.status_code == timed.status_code == 200
    assert "timings" not in plain.json() and {"decision", "keywords", "took_ms"} <= set(plain.json())
    assert list(timed.json()["timings"]) == list(STAGES)
    assert [m["id"] for m in timed.json()["matches"]] == [m["id"] for m in plain.json()["matches"]]
    cached = client.post("/v1/match/image?timings=1", files=photo(myntra, "10054")).json()
    assert list(cached["timings"]) == ["cache", "verify", "search", "decide", "log"]  # a hit skips decode and model
    text = client.post("/v1/match/text?timings=true", json={"text": "blue jeans"}).json()
    assert list(text["timings"]) == ["cache", "model", "search", "decide", "log"]


def test_every_query_feeds_the_stage_histograms(client: TestClient, myntra: Path) -> None:
    client.post("/v1/match/image", files=photo(myntra, "10054"))
    client.post("/v1/match/text", json={"text": "red kurta"})
    assert metric(client, "prodmatch_stage_seconds_count", stage="decode") == 1
    assert metric(client, "prodmatch_stage_seconds_count", stage="model") == 2
    assert metric(client, "prodmatch_stage_seconds_count", stage="search") == 2
    assert metric(client, "prodmatch_stage_seconds_sum", stage="model") > 0


def test_two_apps_share_query_embeddings_through_redis(
    fake_myntra: Settings, redis_server: RedisServer, myntra: Path
) -> None:
    settings = fake_myntra.model_copy(update={"cache_url": redis_server.url(5)})
    first_model, second_model = FakeEmbedders(), FakeEmbedders()
    with (
        TestClient(create_app(settings, embedders=first_model)) as first,
        TestClient(create_app(settings, embedders=second_model)) as second,
    ):
        answers = [app.post("/v1/match/image", files=photo(myntra, "10054")).json() for app in (first, second)]
        assert first_model.last.count("image") == 1 and second_model.last.count("image") == 0
        assert metric(second, "prodmatch_embedding_cache_total", result="hit") == 1
        assert [m["score"] for m in answers[0]["matches"]] == [m["score"] for m in answers[1]["matches"]]
        second.post("/v1/match/text", json={"text": "Blue  JEANS"})
        first.post("/v1/match/text", json={"text": "blue jeans"})
        assert second_model.last.count("text") == 1 and first_model.last.count("text") == 0


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.mark.slow
def test_serve_with_two_workers_runs_two_processes_over_a_read_only_catalog(
    shared_data: Path, cli_env: dict[str, str], offline_bundle: Bundle
) -> None:
    catalog = shared_data / "electronics-small" / "metadata.json"
    ingest = [*PRODMATCH, "ingest", str(catalog), "--model", "offline-effnet-minilm"]
    subprocess.run(ingest, env=cli_env, check=True, capture_output=True, timeout=300)
    port = free_port()
    command = [*PRODMATCH, "serve", "--port", str(port), "--workers", "2"]
    server = subprocess.Popen(command, env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while not _ready(base):
            assert server.poll() is None and time.monotonic() < deadline, "serve --workers 2 did not become ready"
            time.sleep(0.3)
        assert len(_children(server.pid)) >= 2  # uvicorn's supervisor and its worker processes
        for _ in range(4):
            body = httpx.post(f"{base}/v1/match/text", json={"text": "noise cancelling headphones", "top_k": 3})
            assert body.status_code == 200 and "Sony" in body.json()["matches"][0]["product"]["name"]
        refused = httpx.request("DELETE", f"{base}/v1/products/1")
        assert refused.status_code == 403 and "workers" in refused.json()["error"]["message"]
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
    assert os.path.exists(cli_env["PRODMATCH_DATA_DIR"])
