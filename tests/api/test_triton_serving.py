"""The API with its model on a real Triton server (tritonserver from nvidia-pytriton, CPU): the same matches as
the in-process model, /ready reporting the model server, 503 while Triton is down and recovery when it returns,
and a clear CLI error for an unreachable server."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from prodmatch.api.app import create_app
from prodmatch.config import Settings
from prodmatch.models.bundle import Bundle
from tests.api.server import free_port
from tests.api.test_store_outage import wait_until_ready
from tests.samples import ingest_myntra
from tests.servers import TritonServer

TEXTS = ["yellow t-shirt", "black sports shorts", "white shirt for boys"]
PHOTOS = ["36310", "10649", "30602"]


@pytest.fixture
def triton_server(triton_repository: Path) -> Iterator[TritonServer]:
    server = TritonServer(triton_repository)  # its own server: these tests stop it
    yield server
    server.close()


@pytest.fixture(scope="module")
def local_settings(
    base_settings: Settings, offline_bundle: Bundle, myntra: Path, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    settings = base_settings.model_copy(update={"data_dir": tmp_path_factory.mktemp("triton") / "data"})
    ingest_myntra(settings, myntra, rows=40).close()
    return settings


def matches(client: TestClient, myntra: Path) -> list[list[tuple[str, float]]]:
    answers = [client.post("/v1/match/text", json={"text": text, "top_k": 5}) for text in TEXTS]
    for product in PHOTOS:
        image = (myntra / "images" / f"{product}.jpg").read_bytes()
        answers.append(client.post("/v1/match/image", files={"image": ("p.jpg", image, "image/jpeg")}))
    assert all(answer.status_code == 200 for answer in answers), [a.json() for a in answers]
    return [[(m["id"], m["score"]) for m in answer.json()["matches"]] for answer in answers]


def test_matches_over_triton_equal_the_in_process_model(
    triton_server: TritonServer, local_settings: Settings, myntra: Path
) -> None:
    with TestClient(create_app(local_settings)) as client:
        local = matches(client, myntra)
    url = triton_server.url("offline-effnet-minilm")
    with TestClient(create_app(local_settings.model_copy(update={"model_url": url}))) as client:
        ready = client.get("/ready").json()
        assert ready["ready"] is True and ready["parts"]["model"]["runs_on"] == url
        remote = matches(client, myntra)
    for local_answer, remote_answer in zip(local, remote, strict=True):
        assert [i for i, _ in remote_answer] == [i for i, _ in local_answer]
        assert [s for _, s in remote_answer] == pytest.approx([s for _, s in local_answer], abs=1e-4)


def test_triton_dropping_mid_run_gives_503_then_recovers(triton_server: TritonServer, local_settings: Settings) -> None:
    url = triton_server.url("offline-effnet-minilm", "http") + "?retries=1&timeout_s=5"
    with TestClient(create_app(local_settings.model_copy(update={"model_url": url}))) as client:
        assert client.post("/v1/match/text", json={"text": "red shoes"}).status_code == 200
        triton_server.stop()
        down = client.post("/v1/match/text", json={"text": "green cap"})  # not cached: needs the model
        assert down.status_code == 503 and down.json()["error"]["code"] == "model_unavailable"
        assert down.headers["retry-after"] == "1" and "Triton http" in down.json()["error"]["message"]
        ready = client.get("/ready")
        assert ready.status_code == 503 and ready.json()["parts"]["model"]["ok"] is False
        assert ready.json()["parts"]["metadata"]["ok"] is True
        triton_server.start()
        wait_until_ready(client)
        assert client.post("/v1/match/text", json={"text": "green cap"}).status_code == 200


def test_triton_down_at_start_up_leaves_the_app_unready_until_it_returns(
    triton_server: TritonServer, local_settings: Settings
) -> None:
    triton_server.stop()
    url = triton_server.url("offline-effnet-minilm") + "?retries=1"
    with TestClient(create_app(local_settings.model_copy(update={"model_url": url}))) as client:
        ready = client.get("/ready")
        assert ready.status_code == 503 and "Triton grpc" in ready.json()["parts"]["catalog"]["error"]
        down = client.post("/v1/match/text", json={"text": "red shoes"})
        assert down.status_code == 503 and down.json()["error"]["code"] == "model_unavailable"
        triton_server.start()
        wait_until_ready(client, within_s=60)
        assert client.post("/v1/match/text", json={"text": "red shoes"}).status_code == 200


def prodmatch_cli(settings: Settings, model_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`prodmatch --model-url MODEL_URL ARGS` on SETTINGS' catalog, in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "prodmatch", "--model-url", model_url, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "PRODMATCH_DATA_DIR": str(settings.data_dir),
            "PRODMATCH_MODELS_DIR": str(settings.models_dir),
            "PATH": "/usr/bin:/bin",
            "COLUMNS": "200",
        },
    )


def test_cli_says_the_model_server_is_unreachable(local_settings: Settings) -> None:
    url = f"triton://127.0.0.1:{free_port()}/offline-effnet-minilm?retries=1"
    result = prodmatch_cli(local_settings, url, "match", "--text", "red shoes")
    assert result.returncode == 2, result.stderr
    assert "Triton grpc at 127.0.0.1" in result.stderr and "Traceback" not in result.stderr


def test_serve_refuses_a_triton_serving_another_bundle(
    triton_server: TritonServer, local_settings: Settings, clip_random_bundle: Bundle
) -> None:
    url = triton_server.url(clip_random_bundle.manifest.name)  # a model the catalog was not built with
    result = prodmatch_cli(local_settings, url, "serve", "--port", str(free_port()))
    assert result.returncode == 2, result.stderr
    assert "fingerprint" in result.stderr and "Traceback" not in result.stderr
