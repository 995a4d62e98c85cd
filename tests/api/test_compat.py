"""`prodmatch serve --compat`: the seed designs' routes, each called the way its design's README or brief shows,
against myntra-dev (the fake model in process; the real model in a real `prodmatch serve` in the slow test). Each
answer is checked against the /v1 answer to the same query, so the compat routes are proved to be the same
matching in another shape."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from prodmatch.api.app import create_app
from prodmatch.application.keys import create_key
from prodmatch.cli.serve import _serve_settings
from prodmatch.composition import Catalog, open_catalog
from prodmatch.config import Settings
from prodmatch.models.bundle import Bundle
from tests.api.server import running_server
from tests.fakes import FakeEmbedders
from tests.samples import ingest_myntra

SHIRT = "36310"  # myntra-dev's first product: Mr.Men Boys Blazing Yellow T-shirt
# The product fields every answer carries (the /v1 product object's; the catalog's other columns come too)
PRODUCT_KEYS = {"name", "Gender", "Category", "SubCategory", "ProductType", "Colour", "Usage", "images"}


def with_serve(settings: Settings, **changes: Any) -> Settings:
    return settings.model_copy(update={"serve": settings.serve.model_copy(update=changes)})


@pytest.fixture
def client(fake_myntra: Settings, fake_embedders: FakeEmbedders) -> Iterator[TestClient]:
    with TestClient(create_app(with_serve(fake_myntra, compat_routes=True), embedders=fake_embedders)) as test_client:
        yield test_client


def upload(myntra: Path, field: str, product_id: str = SHIRT) -> dict[str, tuple[str, bytes, str]]:
    """A multipart file field as curl -F "FIELD=@ID.jpg" sends it."""
    return {field: (f"{product_id}.jpg", (myntra / "images" / f"{product_id}.jpg").read_bytes(), "image/jpeg")}


def v1_image(client: TestClient, myntra: Path, top_k: int) -> list[dict[str, Any]]:
    matches: list[dict[str, Any]] = client.post(
        "/v1/match/image", files=upload(myntra, "image"), params={"top_k": top_k}
    ).json()["matches"]
    return matches


def test_compat_routes_are_off_by_default(fake_myntra: Settings, fake_embedders: FakeEmbedders, myntra: Path) -> None:
    with TestClient(create_app(fake_myntra, embedders=fake_embedders)) as client:
        assert client.post("/match-product", files=upload(myntra, "image")).status_code == 404
        assert client.post("/match-image", files=upload(myntra, "file")).status_code == 404
        assert client.post("/match-text", json={"text": "yellow t-shirt"}).status_code == 404
        assert client.post("/search", json={"query": "yellow t-shirt", "top_k": 10}).status_code == 404
        assert client.get(f"/image/{SHIRT}").status_code == 404
        assert client.post("/v1/match/text", json={"text": "yellow t-shirt"}).status_code == 200


def test_the_cli_flag_and_the_setting_turn_them_on(base_settings: Settings) -> None:
    assert not base_settings.serve.compat_routes
    assert _serve_settings(base_settings, None, None, False, compat=True).serve.compat_routes
    assert Settings(serve={"compat_routes": "true"}).serve.compat_routes  # PRODMATCH_SERVE__COMPAT_ROUTES=true


def test_004_match_product_answers_the_nearest_product_and_its_distance(client: TestClient, myntra: Path) -> None:
    # 004's README shows curl -X POST -F "test_shoe.jpg" http://localhost:8000/match-product, which curl refuses
    # without a field name; its service reads `image: UploadFile = File(...)`, so clients send -F "image=@test_shoe.jpg"
    response = client.post("/match-product", files=upload(myntra, "image"))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"status", "result"} and body["status"] == "success"
    assert set(body["result"]) == {"match", "distance"}
    match = body["result"]["match"]
    product = client.get(f"/v1/products/{SHIRT}").json()["product"]
    assert match == {"_id": SHIRT, **product} and set(product) >= PRODUCT_KEYS
    assert match["name"] == "Mr.Men Boys Blazing Yellow T-shirt" and match["Colour"] == "Yellow"
    assert body["result"]["distance"] == pytest.approx(0.0, abs=1e-5)  # its own photo
    other = client.post("/match-product", files=upload(myntra, "image", "10649")).json()["result"]
    best = v1_image_of(client, myntra, "10649")
    assert other["match"]["_id"] == best["id"]
    assert other["distance"] == pytest.approx(max(0.0, 1.0 - best["score"]), abs=1e-6)  # verified scores exceed 1


def v1_image_of(client: TestClient, myntra: Path, product_id: str) -> dict[str, Any]:
    body = client.post("/v1/match/image", files=upload(myntra, "image", product_id), params={"top_k": 1}).json()
    top: dict[str, Any] = body["matches"][0]
    return top


def test_004_errors_keep_its_detail_shape(fake_myntra: Settings, fake_embedders: FakeEmbedders, myntra: Path) -> None:
    settings = with_serve(fake_myntra, compat_routes=True)
    with TestClient(create_app(settings, embedders=fake_embedders)) as client:
        corrupt = client.post("/match-product", files={"image": ("x.jpg", b"not a photo", "image/jpeg")})
        assert corrupt.status_code == 400 and isinstance(corrupt.json()["detail"], str)
        missing = client.post("/match-product", files=upload(myntra, "file"))  # 004 names its field "image"
        assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body", "image"]
        assert client.post("/match-text", json={"text": " "}).json()["error"]["code"] == "invalid_text"  # not 004
    with TestClient(create_app(with_serve(settings, max_upload_bytes=1000), embedders=fake_embedders)) as client:
        too_big = client.post("/match-product", files=upload(myntra, "image"))  # refused while it streams in
        assert too_big.status_code == 413 and "limit" in too_big.json()["detail"]
        assert client.post("/v1/match/image", files=upload(myntra, "image")).json()["error"]["code"] == "too_large"
    with open_catalog(fake_myntra, embedders=fake_embedders) as catalog:
        key = create_key(catalog, "match", "compat")[1]
    with TestClient(create_app(with_serve(settings, require_keys=True), embedders=fake_embedders)) as client:
        refused = client.post("/match-product", files=upload(myntra, "image"))
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        assert "API key" in refused.json()["detail"]
        allowed = client.post("/match-product", files=upload(myntra, "image"), headers={"X-API-Key": key})
        assert allowed.status_code == 200 and allowed.json()["result"]["match"]["_id"] == SHIRT


def test_004_an_empty_catalog_answers_no_matches_found(
    settings: Settings, fake_bundle: Bundle, fake_embedders: FakeEmbedders, myntra: Path
) -> None:
    Catalog.open(settings, model=str(fake_bundle.folder), create=True, embedders=fake_embedders).close()
    with TestClient(create_app(with_serve(settings, compat_routes=True), embedders=fake_embedders)) as client:
        body = client.post("/match-product", files=upload(myntra, "image")).json()
    assert body == {"status": "success", "result": {"match": None, "message": "No matches found"}}


def test_000_match_image_takes_file_or_image_and_answers_the_top_5(client: TestClient, myntra: Path) -> None:
    # 000's service: @app.post("/match-image") async def match_image(file: UploadFile = File(...))
    body = client.post("/match-image", files=upload(myntra, "file")).json()
    assert set(body) == {"matches"} and len(body["matches"]) == 5
    assert all({"product_id", "score", *PRODUCT_KEYS} <= set(m) for m in body["matches"])
    expected = v1_image(client, myntra, 5)
    assert [(m["product_id"], m["score"]) for m in body["matches"]] == [(m["id"], m["score"]) for m in expected]
    assert body["matches"][0]["name"] == "Mr.Men Boys Blazing Yellow T-shirt"
    by_image = client.post("/match-image", files=upload(myntra, "image"), params={"top_k": 3}).json()
    assert [m["product_id"] for m in by_image["matches"]] == [m["id"] for m in expected[:3]]
    by_form = client.post("/match-image", files=upload(myntra, "file"), data={"top_k": "2"}).json()
    assert len(by_form["matches"]) == 2


def test_000_match_text_takes_json_or_a_form_field(client: TestClient) -> None:
    # 000: POST /match-text with JSON {"text": ...} (its TextQuery body), or the form field text
    as_json = client.post("/match-text", json={"text": "Doodle Boys Grand Prix White Shirt"}).json()
    assert len(as_json["matches"]) == 5 and as_json["matches"][0]["product_id"] == "10649"
    v1 = client.post("/v1/match/text", json={"text": "Doodle Boys Grand Prix White Shirt", "top_k": 5}).json()
    assert [m["product_id"] for m in as_json["matches"]] == [m["id"] for m in v1["matches"]]
    as_form = client.post("/match-text", data={"text": "Doodle Boys Grand Prix White Shirt", "top_k": "3"}).json()
    assert [m["product_id"] for m in as_form["matches"]] == [m["id"] for m in v1["matches"][:3]]
    assert client.post("/match-text", json={"text": "shirt", "top_k": 0}).status_code == 422
    assert client.post("/match-text", content=b"{not json", headers={"content-type": "application/json"}).status_code
    assert client.post("/match-text", json=["a list"]).json()["error"]["code"] == "invalid_query"


def test_003_search_finds_20_similar_images_with_keywords_and_sources(client: TestClient, myntra: Path) -> None:
    # 003's brief: POST /search, multipart/form-data with an image file
    response = client.post("/search", files=upload(myntra, "image"))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"keywords", "similar_images"}
    images = body["similar_images"]
    assert len(images) == 20 and images[0]["id"] == SHIRT and images[0]["similarity"] == pytest.approx(1.0, abs=1e-5)
    assert all(set(i) == {"id", "thumbnail_url", "source_url", "source_domain", "similarity"} for i in images)
    assert [i["id"] for i in images] == [m["id"] for m in v1_image(client, myntra, 20)]
    assert all(isinstance(k, str) for k in body["keywords"])
    v1 = client.post("/v1/match/image", files=upload(myntra, "image"), params={"top_k": 20}).json()
    assert body["keywords"] == [k["value"] for k in v1["keywords"]]
    for item in images:  # myntra-dev's image URLs become sources once the catalog keeps them (feeds)
        assert item["source_url"] is None or item["source_domain"] == httpx.URL(item["source_url"]).host.removeprefix(
            "www."
        )
    thumbnail = client.get(images[0]["thumbnail_url"])
    assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/jpeg"
    assert images[0]["thumbnail_url"].endswith(f"/image/{SHIRT}?thumbnail=1")
    assert client.post("/search", files=upload(myntra, "file")).json()["similar_images"][0]["id"] == SHIRT
    broken = client.post("/search", content=b"abc", headers={"content-type": "multipart/form-data"})
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "invalid_query"
    no_photo = client.post("/search", data={"image": "not a file"})
    assert no_photo.status_code == 400 and no_photo.json()["error"]["code"] == "invalid_image"


def test_003_image_serves_the_product_photo(client: TestClient, myntra: Path) -> None:
    original = client.get(f"/image/{SHIRT}")
    assert original.status_code == 200 and original.content == (myntra / "images" / f"{SHIRT}.jpg").read_bytes()
    thumbnail = client.get(f"/image/{SHIRT}", params={"thumbnail": 1})
    assert thumbnail.status_code == 200 and len(thumbnail.content) < len(original.content)
    missing = client.get("/image/no-such-product")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_002_search_with_json_answers_results_with_metadata(client: TestClient) -> None:
    # 002's plan: POST /search accepting query text, returning top-K matches with scores and metadata
    response = client.post("/search", json={"query": "red printed t-shirt", "top_k": 10})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"results", "took_ms"} and body["took_ms"] > 0
    assert len(body["results"]) == 10 and all(set(r) == {"id", "score", "metadata"} for r in body["results"])
    assert body["results"][0]["metadata"] == client.get(f"/v1/products/{body['results'][0]['id']}").json()["product"]
    v1 = client.post("/v1/match/text", json={"text": "red printed t-shirt", "top_k": 10}).json()
    assert [(r["id"], r["score"]) for r in body["results"]] == [(m["id"], m["score"]) for m in v1["matches"]]
    assert len(client.post("/search", json={"query": "red printed t-shirt"}).json()["results"]) == 10
    assert client.post("/search", json={"top_k": 10}).status_code == 422
    assert client.post("/search", content=b"query=red", headers={"content-type": "text/plain"}).status_code == 400


def test_compat_queries_share_the_query_log_limits_and_keys(
    fake_myntra: Settings, fake_embedders: FakeEmbedders, myntra: Path
) -> None:
    settings = with_serve(fake_myntra, compat_routes=True, max_json_bytes=200, rate_per_s=0.01, rate_burst=3)
    with TestClient(create_app(settings, embedders=fake_embedders)) as client:
        assert client.post("/match-text", json={"text": "yellow t-shirt"}).status_code == 200
        assert client.post("/search", files=upload(myntra, "image")).status_code == 200
        too_long = {"query": "shirt " * 100}
        assert client.post("/search", json=too_long).json()["error"]["code"] == "too_large"  # JSON limit, not photos'
        assert client.post("/match-image", files=upload(myntra, "file")).status_code == 429
    with open_catalog(fake_myntra, embedders=fake_embedders) as catalog:
        logged = catalog.store.recent_queries(10)
    assert sorted(entry.modality for entry in logged) == ["image", "text"]
    with TestClient(create_app(with_serve(settings, rate_per_s=0, host="0.0.0.0"), embedders=fake_embedders)) as c:
        assert c.post("/search", json={"query": "shirt"}).json()["error"]["code"] == "unauthenticated"
        assert c.get(f"/image/{SHIRT}").status_code == 401


BAD_REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("post", "/search", {"content": b'{"query": "x"}', "headers": {"content-type": "multipart/form-data; boundary=z"}}),
    ("post", "/search", {"content": b"\xff\xfe\x00", "headers": {"content-type": "application/json"}}),
    ("post", "/search", {"content": b"null", "headers": {"content-type": "application/json"}}),
    ("post", "/search", {"json": {"query": "x", "top_k": 100_000}}),
    ("post", "/search", {"json": {"query": "x" * 5000}}),
    ("post", "/search", {"files": {"image": ("a.jpg", b"", "image/jpeg")}}),
    ("post", "/match-text", {"data": {"text": "x", "top_k": "many"}}),
    ("post", "/match-image", {"data": {"file": "not a file"}}),
    ("post", "/match-image", {}),
    ("post", "/match-product", {"json": {"image": "x"}}),
    ("post", "/match-product", {"files": {"image": ("a.jpg", b"\xff\xd8\xff\xe0 truncated", "image/jpeg")}}),
    ("get", "/image/36310", {"params": {"thumbnail": "perhaps"}}),
]


def test_bad_input_is_a_4xx_never_a_5xx(client: TestClient) -> None:
    for method, path, request in BAD_REQUESTS:
        response = getattr(client, method)(path, **request)
        assert 400 <= response.status_code < 500, (path, request, response.text)
        body = response.json()
        assert ("detail" in body) if path == "/match-product" else body["error"]["message"], (path, body)


def test_source_domain_is_the_host_of_the_image_source_url() -> None:
    from prodmatch.api.routes.compat import source_of

    flickr = SimpleNamespace(source_url="https://www.flickr.com/photos/x/1.jpg")
    assert source_of(flickr) == ("https://www.flickr.com/photos/x/1.jpg", "flickr.com")
    assert source_of(SimpleNamespace(source_url=None)) == (None, None)
    assert source_of(SimpleNamespace(path="/a.jpg")) == (None, None)  # an ImageRef from before the URL feeds
    assert source_of(None) == (None, None)


@pytest.mark.slow
def test_compat_routes_with_the_real_model_in_a_real_server(
    settings: Settings, myntra: Path, offline_bundle: Bundle, cli_env: dict[str, str]
) -> None:
    ingest_myntra(settings, myntra, rows=40).close()
    env = {**cli_env, "PRODMATCH_SERVE__COMPAT_ROUTES": "true"}
    with running_server(env) as base:
        photo = upload(myntra, "image", "10649")
        found = httpx.post(f"{base}/match-product", files=photo, timeout=60).json()["result"]
        assert found["match"]["_id"] == "10649" and found["distance"] == pytest.approx(0.0, abs=1e-3)
        similar = httpx.post(f"{base}/search", files=photo, timeout=60).json()["similar_images"]
        assert len(similar) == 20 and similar[0]["id"] == "10649"
        assert httpx.get(similar[0]["thumbnail_url"], timeout=60).headers["content-type"] == "image/jpeg"
        text = httpx.post(f"{base}/match-text", json={"text": "Doodle Boys Grand Prix White Shirt"}, timeout=60)
        assert text.json()["matches"][0]["product_id"] == "10649"
        results = httpx.post(f"{base}/search", json={"query": "white shirt", "top_k": 10}, timeout=60).json()
        assert len(results["results"]) == 10 and results["took_ms"] > 0
