"""The HTTP API in process (ASGI test client): routes, errors, decision plumbing, micro-batching, the cache, the
query log and online edits. Each test gets its own copy of myntra-dev embedded with the fake model (tests/fakes.py)
and its own app, so no test depends on what another one queried, deleted or added. The same API with the real
model: test_serve.py (a real `prodmatch serve`), test_triton_serving.py, test_browser.py (slow tier)."""

from __future__ import annotations

import concurrent.futures
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from prodmatch.api.app import create_app
from prodmatch.composition import open_catalog
from prodmatch.config import MatchingSettings, Settings
from prodmatch.matching.verification import BONUS, STRONG
from prodmatch.models.bundle import Bundle
from tests.fakes import KNOWN_CALIBRATIONS, FakeEmbedders

PRODUCTS = 250  # myntra-dev, one photo each


def with_serve(settings: Settings, **changes: Any) -> Settings:
    """SETTINGS with changed serve settings (a copy: the session's base settings stay as they are)."""
    return settings.model_copy(update={"serve": settings.serve.model_copy(update=changes)})


@pytest.fixture
def client(fake_myntra: Settings, fake_embedders: FakeEmbedders) -> Iterator[TestClient]:
    with TestClient(create_app(fake_myntra, embedders=fake_embedders)) as test_client:
        yield test_client


def photo(myntra: Path, product_id: str) -> dict[str, tuple[str, bytes, str]]:
    return {"image": (f"{product_id}.jpg", (myntra / "images" / f"{product_id}.jpg").read_bytes(), "image/jpeg")}


def ids(body: dict[str, Any]) -> list[str]:
    return [m["id"] for m in body["matches"]]


def expected_decision(space: str, matches: list[dict[str, Any]]) -> tuple[bool, float, float]:
    """(is_match, confidence, threshold) that KNOWN_CALIBRATIONS give for MATCHES (no duplicate listings in them)."""
    calibration = KNOWN_CALIBRATIONS[space]
    margin = matches[0]["score"] - matches[1]["score"]
    confidence = calibration.confidence(matches[0]["score"], margin)
    return confidence >= 0.5, confidence, calibration.threshold(margin)


def metric(client: TestClient, name: str, **labels: str) -> float:
    """The value of one Prometheus sample on /metrics (0 when it is not there yet)."""
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def test_match_image_answers_with_its_product_and_the_calibrated_decision(
    client: TestClient, myntra: Path, fake_bundle: Bundle
) -> None:
    response = client.post("/v1/match/image", files=photo(myntra, "36310"), params={"top_k": 5})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"query_id", "matches", "model", "took_ms", "decision", "keywords", "box"}
    assert body["model"] == fake_bundle.manifest.name and body["took_ms"] > 0
    assert len(body["matches"]) == 5 and body["matches"][0]["id"] == "36310"
    # its own photo, verified, and its colour (similarity 1, up to resizing) at the catalog photos' colour weight
    assert body["matches"][0]["score"] == pytest.approx(1.0 + BONUS + MatchingSettings().colour_weight, abs=5e-3)
    assert body["matches"][0]["product"]["name"] == "Mr.Men Boys Blazing Yellow T-shirt"
    scores = [m["score"] for m in body["matches"]]
    assert scores == sorted(scores, reverse=True)
    # the photo calibration (not the text one) applied to this answer's top score and margin
    is_match, confidence, threshold = expected_decision("image", body["matches"])
    assert body["decision"]["is_match"] is is_match is True
    assert body["decision"]["confidence"] == pytest.approx(confidence, abs=1e-4)
    assert body["decision"]["threshold"] == pytest.approx(threshold, abs=1e-5)
    evidence = body["decision"]["evidence"]  # why: the same photo has far more than chance inliers
    assert evidence["inliers"] >= STRONG and evidence["score"] == body["matches"][0]["score"]
    assert evidence["margin"] == pytest.approx(body["matches"][0]["score"] - body["matches"][1]["score"], abs=1e-5)
    assert body["box"] is None  # region search is off by default


def test_a_photo_of_a_product_not_in_the_catalog_is_answered_but_not_a_match(
    client: TestClient, shared_data: Path
) -> None:
    headphones = (shared_data / "electronics-small" / "images" / "Test_image.jpg").read_bytes()
    body = client.post("/v1/match/image", files={"image": ("h.jpg", headphones, "image/jpeg")}).json()
    assert len(body["matches"]) == 10  # a top-k list always answers; the decision says it is not the product
    is_match, confidence, _ = expected_decision("image", body["matches"])
    assert body["decision"]["is_match"] is is_match is False
    assert body["decision"]["confidence"] == pytest.approx(confidence, abs=1e-4)


def test_text_queries_are_decided_with_the_text_calibration(client: TestClient) -> None:
    body = client.post("/v1/match/text", json={"text": "Doodle Boys Grand Prix White Shirt", "top_k": 3}).json()
    assert ids(body)[0] == "10649"
    is_match, confidence, threshold = expected_decision("text", body["matches"])
    margin = body["matches"][0]["score"] - body["matches"][1]["score"]
    assert body["decision"] == {
        "is_match": is_match,
        "confidence": pytest.approx(confidence, abs=1e-4),
        "threshold": pytest.approx(threshold, abs=1e-5),
        "real_verdicts": 0,
        "evidence": {"score": body["matches"][0]["score"], "margin": pytest.approx(margin, abs=1e-5)},
    }


def test_keywords_are_values_that_dominate_the_answer_but_not_the_catalog(client: TestClient) -> None:
    body = client.post("/v1/match/text", json={"text": "red printed t-shirt", "top_k": 10}).json()
    assert body["keywords"], "ten red t-shirts have something to say"
    for keyword in body["keywords"]:
        having = [m for m in body["matches"] if str(m["product"].get(keyword["key"])) == keyword["value"]]
        assert keyword["share"] == pytest.approx(len(having) / len(body["matches"]))
    assert {"key": "Colour", "value": "Red"} in [{k: kw[k] for k in ("key", "value")} for kw in body["keywords"]]
    assert not any(k["key"] == "Gender" for k in body["keywords"])  # every product is "Boys": says nothing


def test_match_text_with_filters_and_min_score(client: TestClient) -> None:
    query = {"text": "blue denim shirt", "top_k": 4, "filters": ["Colour=Blue"]}
    body = client.post("/v1/match/text", json=query).json()
    assert len(body["matches"]) == 4 and all(m["product"]["Colour"] == "Blue" for m in body["matches"])
    cut = body["matches"][1]["score"]
    trimmed = client.post("/v1/match/text", json={**query, "min_score": cut}).json()
    assert ids(trimmed) == [m["id"] for m in body["matches"] if m["score"] >= cut]
    assert len(ids(trimmed)) == 2


def test_photo_plus_text_scores_each_candidate_by_the_weighted_sum(client: TestClient, myntra: Path) -> None:
    every = {"top_k": PRODUCTS}
    by_photo = {
        m["id"]: m["score"]
        for m in client.post("/v1/match/image", files=photo(myntra, "36310"), params=every).json()["matches"]
    }
    by_text = {
        m["id"]: m["score"]
        for m in client.post("/v1/match/text", json={"text": "red t-shirt", **every}).json()["matches"]
    }
    assert len(by_photo) == len(by_text) == PRODUCTS
    both = client.post(
        "/v1/match",
        files=photo(myntra, "36310"),
        data={"text": "red t-shirt", "image_weight": "0.3"},
        params={"top_k": 8},
    ).json()
    assert len(both["matches"]) == 8
    for found in both["matches"]:
        assert found["score"] == pytest.approx(0.3 * by_photo[found["id"]] + 0.7 * by_text[found["id"]], abs=1e-5)
    red = lambda body: sum(m["product"]["Colour"] == "Red" for m in body["matches"])  # noqa: E731
    photo_alone = client.post("/v1/match/image", files=photo(myntra, "36310"), params={"top_k": 8}).json()
    assert red(both) > red(photo_alone)


def test_photo_with_full_image_weight_answers_as_the_photo_alone(client: TestClient, myntra: Path) -> None:
    alone = client.post("/v1/match/image", files=photo(myntra, "10649"), params={"top_k": 5}).json()
    both = client.post(
        "/v1/match",
        files=photo(myntra, "10649"),
        data={"text": "red t-shirt", "image_weight": "1"},
        params={"top_k": 5},
    ).json()
    assert ids(both) == ids(alone)
    assert [m["score"] for m in both["matches"]] == pytest.approx([m["score"] for m in alone["matches"]], abs=1e-5)


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
def test_bad_image_requests_get_a_json_4xx(
    client: TestClient, fake_embedders: FakeEmbedders, request_kwargs: dict[str, Any], status: int, code: str
) -> None:
    response = client.post("/v1/match/image", **request_kwargs)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code and response.json()["error"]["message"]
    assert fake_embedders.last.count("image") == 0  # refused before any model time was spent


def test_truncated_photo_is_refused_and_leaves_no_log_entry(client: TestClient, myntra: Path) -> None:
    state = client.app.state.prodmatch  # type: ignore[attr-defined]
    data = (myntra / "images" / "36310.jpg").read_bytes()
    response = client.post("/v1/match/image", files={"image": ("cut.jpg", data[: len(data) // 3], "image/jpeg")})
    assert response.status_code == 400 and "truncated" in response.json()["error"]["message"]
    state.query_log.flush()
    assert state.catalog.store.recent_queries(10) == []
    assert client.post("/v1/match/image", files={"image": ("whole.jpg", data, "image/jpeg")}).status_code == 200
    state.query_log.flush()
    assert len(state.catalog.store.recent_queries(10)) == 1  # the log does record answered queries


def test_decompression_bomb_is_refused(client: TestClient) -> None:
    buffer = io.BytesIO()
    Image.new("L", (10_000, 6_000)).save(buffer, format="PNG")  # 60 Mpx, a few KB compressed
    response = client.post("/v1/match/image", files={"image": ("bomb.png", buffer.getvalue(), "image/png")})
    assert response.status_code == 400 and "decompression bomb" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"text": "   "}, 400, "invalid_text"),
        ({"text": "a" * 5000}, 400, "invalid_text"),
        ({"text": ""}, 422, "invalid_request"),
        ({"text": "x", "filters": ["p>="]}, 400, "invalid_filter"),
        ({"text": "x", "filters": ["Size=M"]}, 400, "invalid_filter"),
        ({"text": "x", "top_k": 0}, 422, "invalid_request"),
        ({"text": "x" * 70_000}, 413, "too_large"),
    ],
)
def test_bad_text_requests_get_a_json_4xx(
    client: TestClient, fake_embedders: FakeEmbedders, body: dict[str, Any], status: int, code: str
) -> None:
    response = client.post("/v1/match/text", json=body)
    assert response.status_code == status and response.json()["error"]["code"] == code
    assert fake_embedders.last.count("text") == 0


def test_products_are_paged_filtered_and_served(client: TestClient, myntra: Path) -> None:
    pages = [
        client.get("/v1/products", params={"limit": 20, "offset": offset, "filter": "Colour=Blue"}).json()
        for offset in (0, 20, 40)
    ]
    assert [page["total"] for page in pages] == [48, 48, 48] and [len(p["items"]) for p in pages] == [20, 20, 8]
    seen = [item["id"] for page in pages for item in page["items"]]
    assert len(set(seen)) == 48 and all(i["product"]["Colour"] == "Blue" for p in pages for i in p["items"])
    assert client.get("/v1/products").json()["total"] == PRODUCTS
    assert client.get("/v1/products/36310").json()["product"]["name"] == "Mr.Men Boys Blazing Yellow T-shirt"
    image = client.get("/v1/products/36310/image")
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    assert image.content == (myntra / "images" / "36310.jpg").read_bytes()
    thumbnail = client.get("/v1/products/36310/thumbnail")
    assert thumbnail.status_code == 200 and Image.open(io.BytesIO(thumbnail.content)).format == "JPEG"
    missing = client.get("/v1/products/missing")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert client.get("/v1/products/36310/image", params={"n": 1}).status_code == 404
    assert client.get("/v1/products", params={"filter": "Size=M"}).json()["error"]["code"] == "invalid_filter"


def test_facets_are_the_filterable_columns_with_their_counts(client: TestClient) -> None:
    facets = {facet["key"]: facet["values"] for facet in client.get("/v1/facets").json()["facets"]}
    assert {"Colour", "ProductType", "Usage"} <= set(facets)
    assert "Gender" not in facets  # one value for every product: nothing to filter on
    assert "ImageURL" not in facets and "ProductTitle" not in facets  # URLs and titles are not facets
    colours = {value["value"]: value["count"] for value in facets["Colour"]}
    assert colours["Blue"] == 48 and sum(colours.values()) == PRODUCTS


def test_concurrent_queries_share_model_runs_and_repeats_hit_the_cache(
    fake_myntra: Settings, fake_embedders: FakeEmbedders
) -> None:
    # wide enough a wait that 8 concurrent requests share runs even on a loaded machine
    settings = with_serve(fake_myntra, batch_size=8, batch_wait_ms=500.0)
    with TestClient(create_app(settings, embedders=fake_embedders)) as client:
        texts = [f"boys shirt number {i}" for i in range(8)]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda t: client.post("/v1/match/text", json={"text": t}), texts))
        assert [answer.status_code for answer in answers] == [200] * 8
        model = fake_embedders.last
        runs = [size for space, size in model.calls if space == "text"]
        assert sum(runs) == 8 and len(runs) < 8  # some model runs served several requests
        assert metric(client, "prodmatch_embed_batch_size_count", modality="text") == len(runs)
        assert metric(client, "prodmatch_embed_batch_size_sum", modality="text") == 8

        repeat = client.post("/v1/match/text", json={"text": "Boys shirt   NUMBER 3"})  # the same after normalising
        assert model.count("text") == 8  # answered from the cache, no model run
        assert ids(repeat.json()) == ids(answers[3].json())
        assert metric(client, "prodmatch_embedding_cache_total", result="hit") == 1


def test_health_ready_and_metrics(client: TestClient, myntra: Path, fake_bundle: Bundle) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {
        "ready": True,
        "parts": {
            "model": {
                "ok": True,
                "name": fake_bundle.manifest.name,
                "fingerprint": fake_bundle.manifest.fingerprint,
                "runs_on": "process",
            },
            "metadata": {"ok": True, "products": PRODUCTS},
            "vectors_image": {"ok": True, "vectors": PRODUCTS},
            "vectors_text": {"ok": True, "vectors": PRODUCTS},
        },
    }
    route = {"method": "POST", "route": "/v1/match/image"}
    assert metric(client, "prodmatch_request_seconds_count", **route) == 0
    client.post("/v1/match/image", files=photo(myntra, "36310"))
    assert metric(client, "prodmatch_request_seconds_count", **route) == 1
    assert metric(client, "prodmatch_products") == PRODUCTS
    assert metric(client, "prodmatch_index_vectors", space="image") == PRODUCTS


def test_every_match_is_in_the_query_log(client: TestClient, fake_myntra: Settings, myntra: Path) -> None:
    responses = [
        client.post("/v1/match/text", json={"text": "query log probe"}),
        client.post("/v1/match/image", files=photo(myntra, "36310"), params={"top_k": 3}),
    ]
    client.app.state.prodmatch.query_log.flush()  # type: ignore[attr-defined]
    with open_catalog(fake_myntra) as catalog:
        logged = {entry.query_id: entry for entry in catalog.store.recent_queries(10)}
    assert set(logged) == {response.json()["query_id"] for response in responses}
    for response, modality in zip(responses, ("text", "image"), strict=True):
        answer = response.json()
        entry = logged[answer["query_id"]]
        assert entry.modality == modality and entry.took_ms > 0
        assert entry.request_id == response.headers["x-request-id"] != ""
        assert entry.top_ids == ids(answer)
        assert entry.top_scores == pytest.approx([m["score"] for m in answer["matches"]])
        assert entry.is_match is answer["decision"]["is_match"]
        assert entry.confidence == pytest.approx(answer["decision"]["confidence"])
        assert "probe" not in repr(entry)  # hashes, never the query itself


def yellow(client: TestClient) -> int:
    facets = {facet["key"]: facet["values"] for facet in client.get("/v1/facets").json()["facets"]}
    return next(value["count"] for value in facets["Colour"] if value["value"] == "Yellow")


def test_delete_is_visible_to_the_next_query(client: TestClient, myntra: Path) -> None:
    assert (
        client.post("/v1/match/image", files=photo(myntra, "36310"), params={"top_k": 3}).json()["matches"][0]["id"]
        == "36310"
    )
    assert client.delete("/v1/products/36310").status_code == 204
    body = client.post("/v1/match/image", files=photo(myntra, "36310"), params={"top_k": 3}).json()
    assert "36310" not in ids(body)
    assert client.get("/v1/products/36310").status_code == 404
    parts = client.get("/ready").json()["parts"]
    assert parts["metadata"]["products"] == parts["vectors_image"]["vectors"] == PRODUCTS - 1
    assert yellow(client) == 21  # the catalog's facts (facets, keyword baselines) forgot it too: 22 before
    assert client.delete("/v1/products/36310").status_code == 404


def test_put_adds_a_product_that_the_next_query_finds(client: TestClient, shared_data: Path) -> None:
    data = (shared_data / "electronics-small" / "images" / "Test_image.jpg").read_bytes()
    fields = '{"name": "Store-brand padded jacket", "Colour": "Black", "price": 49.5}'
    before = client.post("/v1/match/text", json={"text": "jacket", "filters": ["price<=50"]})
    assert before.json()["error"]["code"] == "invalid_filter"  # no product has a price yet
    created = client.put("/v1/products/new-1", data={"fields": fields}, files={"image": ("t.jpg", data, "image/jpeg")})
    assert created.status_code == 200 and created.json()["product"]["price"] == 49.5
    found = client.post("/v1/match/image", files={"image": ("q.jpg", data, "image/jpeg")}, params={"top_k": 1}).json()
    colour = MatchingSettings().colour_weight  # its own photo's colour (similarity 1, up to resizing)
    assert ids(found) == ["new-1"] and found["matches"][0]["score"] == pytest.approx(1.0 + colour, abs=5e-3)
    by_text = client.post("/v1/match/text", json={"text": "store-brand padded jacket", "top_k": 1}).json()
    assert ids(by_text) == ["new-1"]
    assert client.get("/v1/products").json()["total"] == PRODUCTS + 1
    cheap = client.post("/v1/match/text", json={"text": "jacket", "filters": ["price<=50"]})  # a new attribute
    assert cheap.status_code == 200 and ids(cheap.json()) == ["new-1"]
    renamed = client.put("/v1/products/new-1", data={"fields": '{"name": "Padded jacket", "Colour": "Black"}'})
    assert renamed.json()["product"]["name"] == "Padded jacket" and len(renamed.json()["product"]["images"]) == 1
    again = client.post("/v1/match/image", files={"image": ("q.jpg", data, "image/jpeg")}, params={"top_k": 1}).json()
    assert again["matches"][0]["product"]["name"] == "Padded jacket"  # the next answer shows the new fields
    assert "price" not in renamed.json()["product"]  # a PUT replaces the product's fields
    thumbnail = client.get("/v1/products/new-1/thumbnail")
    assert thumbnail.status_code == 200 and thumbnail.content[:2] == b"\xff\xd8"
    bad = client.put("/v1/products/new-2", data={"fields": "{}"}, files={"image": ("x.jpg", b"junk", "image/jpeg")})
    assert bad.status_code == 400 and client.get("/v1/products/new-2").status_code == 404
    assert client.put("/v1/products/new-3", data={"fields": "[1]"}).json()["error"]["code"] == "invalid_query"
    assert client.put("/v1/products/new-3", data={"fields": "{oops"}).json()["error"]["code"] == "invalid_query"
    assert client.get("/v1/products").json()["total"] == PRODUCTS + 1


def test_model_server_down_gives_503_and_unready_then_recovers(
    client: TestClient, fake_embedders: FakeEmbedders
) -> None:
    model = fake_embedders.last
    model.down = "connection refused"
    ready = client.get("/ready")
    assert ready.status_code == 503 and ready.json()["ready"] is False
    assert (
        ready.json()["parts"]["model"]["ok"] is False
        and "connection refused" in ready.json()["parts"]["model"]["error"]
    )
    assert ready.json()["parts"]["metadata"]["ok"] is True
    down = client.post("/v1/match/text", json={"text": "green cap"})
    assert down.status_code == 503 and down.json()["error"]["code"] == "model_unavailable"
    assert down.headers["retry-after"] == "1"
    model.down = None
    assert client.get("/ready").status_code == 200
    assert client.post("/v1/match/text", json={"text": "green cap"}).status_code == 200


def test_a_stuck_model_times_out_with_503(fake_myntra: Settings, fake_embedders: FakeEmbedders) -> None:
    with TestClient(create_app(with_serve(fake_myntra, model_timeout_s=0.2), embedders=fake_embedders)) as client:
        fake_embedders.last.delay_s = 2.0
        response = client.post("/v1/match/text", json={"text": "slow query"})
    assert response.status_code == 503 and response.json()["error"]["code"] == "model_timeout"
    assert "0.2 s" in response.json()["error"]["message"]
