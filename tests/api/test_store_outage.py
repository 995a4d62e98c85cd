"""A real PostgreSQL (metadata + pgvector) stopped and started under a running app: 503 while it is down,
recovery without a restart, /ready saying which part is down; the CLI exits with a clear message. The model is the
fake one (tests/fakes.py): these tests are about the stores."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from prodmatch.api.app import create_app
from prodmatch.api.state import OPEN_RETRY_S
from prodmatch.config import Settings
from prodmatch.models.bundle import Bundle
from tests.fakes import FakeEmbedders
from tests.samples import ingest_myntra
from tests.servers import PostgresServer

QUERY = {"text": "yellow t-shirt", "top_k": 3}


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()  # its own server: these tests stop it
    yield server
    server.close()


@pytest.fixture
def pg_settings(
    postgres: PostgresServer, base_settings: Settings, fake_bundle: Bundle, myntra: Path, tmp_path: Path
) -> Settings:
    url = postgres.create_database("catalog")
    settings = base_settings.model_copy(
        update={
            "data_dir": tmp_path / "data",
            "metadata_url": url,
            "vectors_url": url.replace("postgresql://", "pgvector://", 1),
        }
    )
    ingest_myntra(settings, myntra, rows=12, model=str(fake_bundle.folder), embedders=FakeEmbedders()).close()
    return settings


def wait_until_ready(client: TestClient, within_s: float = 30) -> None:
    deadline = time.monotonic() + within_s
    while client.get("/ready").status_code != 200:
        assert time.monotonic() < deadline, client.get("/ready").json()
        time.sleep(OPEN_RETRY_S / 2)


def test_database_dropping_mid_run_gives_503_then_recovers(
    postgres: PostgresServer, pg_settings: Settings, fake_embedders: FakeEmbedders
) -> None:
    with TestClient(create_app(pg_settings, embedders=fake_embedders)) as client:
        assert client.get("/ready").status_code == 200
        before = client.post("/v1/match/text", json=QUERY).json()["matches"]
        postgres.stop()
        down = client.post("/v1/match/text", json=QUERY)
        assert down.status_code == 503 and down.json()["error"]["code"] == "store_unavailable"
        assert down.headers["retry-after"] == "1"
        ready = client.get("/ready")
        assert ready.status_code == 503 and ready.json()["parts"]["metadata"]["ok"] is False
        assert client.get("/v1/products").status_code == 503
        postgres.start()
        wait_until_ready(client)
        assert client.post("/v1/match/text", json=QUERY).json()["matches"] == before


def test_database_down_at_start_up_leaves_the_app_unready_until_it_returns(
    postgres: PostgresServer, pg_settings: Settings, fake_embedders: FakeEmbedders
) -> None:
    postgres.stop()
    with TestClient(create_app(pg_settings, embedders=fake_embedders)) as client:
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert "unavailable" in ready.json()["parts"]["catalog"]["error"]
        assert client.post("/v1/match/text", json=QUERY).status_code == 503
        postgres.start()
        wait_until_ready(client)
        assert len(client.post("/v1/match/text", json=QUERY).json()["matches"]) == 3


def test_cli_says_the_database_is_unreachable(postgres: PostgresServer, pg_settings: Settings) -> None:
    postgres.stop()
    result = subprocess.run(
        [sys.executable, "-m", "prodmatch", "--metadata-url", str(pg_settings.metadata_url), "stats"],
        capture_output=True,
        text=True,
        env={"PRODMATCH_DATA_DIR": str(pg_settings.data_dir), "PATH": "/usr/bin:/bin", "COLUMNS": "200"},
    )
    assert result.returncode == 2
    assert "SQL database unavailable" in result.stderr and "Traceback" not in result.stderr
