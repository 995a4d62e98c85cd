"""The HTTP API against a real data dir, real model bundle and real stores (in-process ASGI client)."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from prodmatch.api.app import create_app
from prodmatch.config import Settings
from prodmatch.eval.calibrate import calibrate_decisions
from prodmatch.matching.service import MatchService
from prodmatch.models.bundle import Bundle
from prodmatch.stores.datadir import DataDir
from tests.samples import ingest_myntra


@pytest.fixture(scope="module")
def myntra_settings(
    base_settings: Settings, myntra: Path, tmp_path_factory: pytest.TempPathFactory, offline_bundle: Bundle
) -> Settings:
    settings = base_settings.model_copy(update={"data_dir": tmp_path_factory.mktemp("api-data")})
    settings.serve.batch_wait_ms = 30.0  # wide enough that concurrent test requests share batches
    datadir = ingest_myntra(settings, myntra)
    calibrate_decisions(MatchService(datadir), sample=100)
    datadir.close()
    return settings


@pytest.fixture(scope="module")
def client(myntra_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(myntra_settings)) as test_client:
        yield test_client


def photo(myntra: Path, product_id: str) -> dict[str, tuple[str, bytes, str]]:
    return {"image": (f"{product_id}.jpg", (myntra / "images" / f"{product_id}.jpg").read_bytes(), "image/jpeg")}


def test_match_image_returns_the_cli_shape_plus_decision_and_keywords(client: TestClient, myntra: Path) -> None:
    response = client.post("/v1/match/image", files=photo(myntra, "36310"), params={"top_k": 5})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"matches", "model", "took_ms", "decision", "keywords"}
    assert body["matches"][0]["id"] == "36310" and len(body["matches"]) == 5
    assert body["decision"]["is_match"] is True and 0.5 < body["decision"]["confidence"] <= 1
    assert {"key": "ProductType", "value": "Tshirts", "share": 1.0} in body["keywords"]
    assert not any(k["key"] == "Gender" for k in body["keywords"])  # every product is "Boys": says nothing


def test_match_text_with_filters_and_min_score(client: TestClient) -> None:
    body = client.post(
        "/v1/match/text", json={"text": "blue denim shirt", "top_k": 4, "filters": ["Colour=Blue"]}
    ).json()
    assert len(body["matches"]) == 4 and all(m["product"]["Colour"] == "Blue" for m in body["matches"])
    cut = body["matches"][1]["score"]
    trimmed = client.post(
        "/v1/match/text", json={"text": "blue denim shirt", "top_k": 4, "filters": ["Colour=Blue"], "min_score": cut}
    ).json()
    assert [m["id"] for m in trimmed["matches"]] == [m["id"] for m in body["matches"][:2]]


def test_photo_plus_text_moves_results_towards_the_text(client: TestClient, myntra: Path) -> None:
    alone = client.post("/v1/match/image", files=photo(myntra, "36310"), params={"top_k": 5}).json()
    both = client.post(
        "/v1/match",
        files=photo(myntra, "36310"),
        data={"text": "red t-shirt", "image_weight": "0.5"},
        params={"top_k": 5},
    ).json()
    colours = lambda body: [m["product"]["Colour"] for m in body["matches"]]  # noqa: E731
    assert colours(both).count("Red") > colours(alone).count("Red")


@pytest.mark.parametrize(
    ("request_kwargs", "status", "code"),
    [
        ({"files": {"image": ("x.jpg", b"not an image", "image/jpeg")}}, 400, "invalid_image"),
        ({"files": {"image": ("x.jpg", b"", "image/jpeg")}}, 400, "invalid_image"),
        ({"files": {"image": ("x.jpg", b"\xff" * (11 * 1024 * 1024), "image/jpeg")}}, 413, "too_large"),
        ({"files": {"image": ("x.jpg", b"x", "image/jpeg")}, "params": {"top_k": 0}}, 422, "invalid_request"),
        ({"files": {"image": ("x.jpg", b"x", "image/jpeg")}, "params": {"top_k": 10_000}}, 422, "invalid_request"),
        ({"files": {"image": ("x.jpg", b"x", "image/jpeg")}, "params": {"filter": "Size=M"}}, 400, "invalid_filter"),
        ({}, 422, "invalid_request"),
    ],
)
def test_bad_image_requests_get_a_json_4xx(client: TestClient, request_kwargs: dict, status: int, code: str) -> None:
    response = client.post("/v1/match/image", **request_kwargs)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code and response.json()["error"]["message"]


def test_truncated_photo_is_refused_and_leaves_no_log_entry(client: TestClient, myntra: Path) -> None:
    state = client.app.state.prodmatch  # type: ignore[attr-defined]
    state.query_log.flush()
    before = len(state.datadir.store.recent_queries(10_000))
    data = (myntra / "images" / "36310.jpg").read_bytes()
    response = client.post("/v1/match/image", files={"image": ("cut.jpg", data[: len(data) // 3], "image/jpeg")})
    assert response.status_code == 400 and "truncated" in response.json()["error"]["message"]
    state.query_log.flush()
    assert len(state.datadir.store.recent_queries(10_000)) == before


def test_decompression_bomb_is_refused(client: TestClient) -> None:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (10_000, 6_000)).save(buffer, format="PNG")  # 60 Mpx, a few KB compressed
    response = client.post("/v1/match/image", files={"image": ("bomb.png", buffer.getvalue(), "image/png")})
    assert response.status_code == 400 and "decompression bomb" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"text": "   "}, "invalid_text"),
        ({"text": "a" * 5000}, "invalid_text"),
        ({"text": ""}, "invalid_request"),
        ({"text": "x", "filters": ["p>="]}, "invalid_filter"),
    ],
)
def test_bad_text_requests_get_a_json_4xx(client: TestClient, body: dict, code: str) -> None:
    response = client.post("/v1/match/text", json=body)
    assert 400 <= response.status_code < 500 and response.json()["error"]["code"] == code


def test_products_are_paged_filtered_and_served(client: TestClient) -> None:
    page = client.get("/v1/products", params={"limit": 5, "offset": 0, "filter": "Colour=Blue"}).json()
    assert page["total"] == 48 and len(page["items"]) == 5
    assert client.get("/v1/products/36310").json()["product"]["name"] == "Mr.Men Boys Blazing Yellow T-shirt"
    image = client.get("/v1/products/36310/image")
    assert (
        image.status_code == 200 and image.headers["content-type"] == "image/jpeg" and image.content[:2] == b"\xff\xd8"
    )
    assert client.get("/v1/products/missing").status_code == 404


def test_concurrent_queries_share_model_runs_and_repeats_hit_the_cache(client: TestClient) -> None:
    texts = [f"boys shirt number {i}" for i in range(8)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda t: client.post("/v1/match/text", json={"text": t}).status_code, texts))
    assert statuses == [200] * 8
    client.post("/v1/match/text", json={"text": "Boys shirt   NUMBER 3"})  # same query after normalisation
    metrics = client.get("/metrics").text
    count = float(
        next(
            line.split()[-1]
            for line in metrics.splitlines()
            if line.startswith('prodmatch_embed_batch_size_count{modality="text"}')
        )
    )
    total = float(
        next(
            line.split()[-1]
            for line in metrics.splitlines()
            if line.startswith('prodmatch_embed_batch_size_sum{modality="text"}')
        )
    )
    assert total / count > 1.0  # some model runs served several requests
    assert 'prodmatch_embedding_cache_total{result="hit"}' in metrics


def test_health_ready_and_metrics(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready").json()
    assert ready["ready"] is True and ready["parts"]["metadata"]["products"] >= 249
    metrics = client.get("/metrics").text
    assert 'prodmatch_request_seconds_bucket{le="0.03",method="POST",route="/v1/match/image"}' in metrics
    assert "prodmatch_index_vectors" in metrics


def test_every_match_is_in_the_query_log(client: TestClient, myntra_settings: Settings) -> None:
    client.post("/v1/match/text", json={"text": "query log probe"})
    client.app.state.prodmatch.query_log.flush()
    datadir = DataDir.open(myntra_settings)
    try:
        entries = datadir.store.recent_queries(200)
    finally:
        datadir.close()
    probe = entries[-1]
    assert probe.modality == "text" and probe.top_ids and probe.took_ms > 0 and probe.is_match in (True, False)
    assert any(entry.modality == "image" for entry in entries)


def test_delete_is_visible_to_the_next_query(client: TestClient, myntra: Path) -> None:
    assert client.delete("/v1/products/36310").status_code == 204
    body = client.post("/v1/match/image", files=photo(myntra, "36310"), params={"top_k": 3}).json()
    assert "36310" not in [m["id"] for m in body["matches"]]
    assert client.get("/v1/products/36310").status_code == 404


def test_put_adds_a_product_that_the_next_query_finds(client: TestClient, shared_data: Path) -> None:
    data = (shared_data / "electronics-small" / "images" / "Test_image.jpg").read_bytes()
    fields = '{"name": "Store-brand padded jacket", "Colour": "Black", "price": 49.5}'
    created = client.put("/v1/products/new-1", data={"fields": fields}, files={"image": ("t.jpg", data, "image/jpeg")})
    assert created.status_code == 200 and created.json()["product"]["price"] == 49.5
    found = client.post("/v1/match/image", files={"image": ("q.jpg", data, "image/jpeg")}, params={"top_k": 1}).json()
    assert found["matches"][0]["id"] == "new-1"
    renamed = client.put("/v1/products/new-1", data={"fields": '{"name": "Padded jacket", "Colour": "Black"}'})
    assert renamed.json()["product"]["name"] == "Padded jacket" and len(renamed.json()["product"]["images"]) == 1
    thumbnail = client.get("/v1/products/new-1/thumbnail")
    assert thumbnail.status_code == 200 and thumbnail.content[:2] == b"\xff\xd8"
    bad = client.put("/v1/products/new-2", data={"fields": "{}"}, files={"image": ("x.jpg", b"junk", "image/jpeg")})
    assert bad.status_code == 400 and client.get("/v1/products/new-2").status_code == 404
    assert client.put("/v1/products/new-3", data={"fields": "[1]"}).status_code == 400
