"""What a hostile or broken client can send, one case per test (keys, scopes and rates: test_access.py; the
fuzzer: test_fuzz.py): bodies over the limit (declared or streamed), a body that trickles in, malformed multipart,
path traversal in ids and upload names, awkward product ids. Each must end in a documented 4xx in the one error
shape, never a 5xx, and must not write outside the data dir. The fake model over a private copy of myntra-dev."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi.testclient import TestClient

from prodmatch.api.app import create_app
from prodmatch.config import Settings
from tests.api.live import live_app
from tests.fakes import FakeEmbedders

PHOTO = "36310"


def with_serve(settings: Settings, **changes: Any) -> Settings:
    return settings.model_copy(update={"serve": settings.serve.model_copy(update=changes)})


@pytest.fixture
def client(fake_myntra: Settings, fake_embedders: FakeEmbedders) -> Iterator[TestClient]:
    with TestClient(create_app(fake_myntra, embedders=fake_embedders), raise_server_exceptions=False) as test_client:
        yield test_client


def photo_bytes(myntra: Path) -> bytes:
    return (myntra / "images" / f"{PHOTO}.jpg").read_bytes()


def in_path(product_id: str) -> str:
    """PRODUCT_ID as one path segment, dots too (so a client cannot collapse "..": the server sees it)."""
    return quote(product_id, safe="").replace(".", "%2E")


def error_code(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


def files_under(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*") if path.is_file()}


def test_an_oversized_body_is_refused_with_413_declared_or_streamed(
    fake_myntra: Settings, fake_embedders: FakeEmbedders, myntra: Path
) -> None:
    settings = with_serve(fake_myntra, max_upload_bytes=len(photo_bytes(myntra)) + 1_000, max_json_bytes=1_000)
    with TestClient(create_app(settings, embedders=fake_embedders)) as client:
        declared = client.post("/v1/match/text", json={"text": "shirt " * 400})
        assert declared.status_code == 413 and error_code(declared) == "too_large"

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it streams in
            yield b'{"text": "'
            for _ in range(50):
                yield b"shirt " * 20
            yield b'"}'

        streamed = client.post("/v1/match/text", content=chunks(), headers={"Content-Type": "application/json"})
        assert streamed.status_code == 413 and error_code(streamed) == "too_large"
        big_photo = {"image": ("big.jpg", b"\xff" * (len(photo_bytes(myntra)) + 2_000), "image/jpeg")}
        assert client.post("/v1/match/image", files=big_photo).status_code == 413
        assert client.put("/v1/products/x", files=big_photo).status_code == 413
        small = {"image": ("ok.jpg", photo_bytes(myntra), "image/jpeg")}
        assert client.post("/v1/match/image", files=small).status_code == 200  # under the limit: served


def test_a_body_that_trickles_in_is_given_up_with_408(fake_myntra: Settings, fake_embedders: FakeEmbedders) -> None:
    settings = with_serve(fake_myntra, body_timeout_s=1.0)
    with live_app(settings, fake_embedders) as base:
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            started = time.monotonic()
            sock.sendall(
                b"POST /v1/match/text HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100\r\n\r\n" + b'{"text": "sh'
            )  # ... and the other 88 bytes never come
            answer = sock.recv(65536).decode()
            waited = time.monotonic() - started
        assert answer.startswith("HTTP/1.1 408") and '"too_slow"' in answer
        assert 0.9 <= waited < 5  # the server gave up at its limit, not the client's
        assert httpx.get(f"{base}/health").status_code == 200  # and serves the next client


@pytest.mark.parametrize(
    "content_type, body",
    [
        ("multipart/form-data", b"--x\r\nnot really\r\n"),  # no boundary parameter
        ("multipart/form-data; boundary=xyz", b"garbage without any boundary"),
        ("multipart/form-data; boundary=xyz", b'--xyz\r\nContent-Disposition: form-data; name="image"\r\n\r\nab'),
        ("multipart/form-data; boundary=xyz", b"--xyz\r\nno headers at all\r\n--xyz--\r\n"),
        ("text/plain", b"just text"),
    ],
)
def test_malformed_multipart_is_a_4xx_in_the_error_shape(client: TestClient, content_type: str, body: bytes) -> None:
    for url in ("/v1/match/image", "/v1/match"):
        response = client.post(url, content=body, headers={"Content-Type": content_type})
        assert 400 <= response.status_code < 500, (url, response.status_code, response.text)
        assert error_code(response)


def test_an_undecodable_photo_is_400_not_500(client: TestClient) -> None:
    response = client.post("/v1/match/image", files={"image": ("x.jpg", b"\x89PNG\r\n\x1a\n broken", "image/png")})
    assert response.status_code == 400 and error_code(response) == "invalid_image"


@pytest.mark.parametrize("product_id", ["../../etc/passwd", "..", "../metadata.db", "/etc/passwd", "a/../../b"])
def test_path_traversal_in_ids_reads_and_writes_nothing_outside_the_catalog(
    client: TestClient, fake_myntra: Settings, myntra: Path, product_id: str
) -> None:
    data_dir = fake_myntra.data_dir
    before = files_under(data_dir.parent)
    path = in_path(product_id)
    for suffix in ("", "/image", "/thumbnail"):
        response = client.get(f"/v1/products/{path}{suffix}")
        assert response.status_code == 404 and error_code(response) == "not_found", (suffix, response.text)
    upload = {"image": ("../../../evil.jpg", photo_bytes(myntra), "image/jpeg")}
    created = client.put(f"/v1/products/{path}", files=upload, data={"fields": '{"name": "trap"}'})
    assert created.status_code == 200 and created.json()["id"] == product_id  # just an id: stored as one
    new_files = files_under(data_dir.parent) - before
    assert new_files and all(data_dir in p.parents for p in new_files), new_files  # all inside the data dir
    assert not any("evil" in p.name for p in new_files)  # the client's file name is never used
    assert client.get(f"/v1/products/{path}/image").content == photo_bytes(myntra)
    assert client.delete(f"/v1/products/{path}").status_code == 204


def test_ids_with_slashes_and_percents_round_trip(fake_myntra: Settings, fake_embedders: FakeEmbedders) -> None:
    # a real server: the ASGI test client decodes paths twice ("%252F" would arrive as "/"), uvicorn once
    with live_app(fake_myntra, fake_embedders) as base, httpx.Client(base_url=base) as client:
        for product_id in ["sku/12/blue", "50%off", "%2F", "100% cotton/", "a b?c#d", "../x"]:
            path = in_path(product_id)
            created = client.put(f"/v1/products/{path}", data={"fields": '{"name": "odd id shirt"}'})
            assert created.status_code == 200 and created.json()["id"] == product_id, created.text
            assert client.get(f"/v1/products/{path}").json()["product"]["name"] == "odd id shirt"
            found = client.post("/v1/match/text", json={"text": "odd id shirt", "top_k": 1}).json()
            assert found["matches"], (product_id, found)
            assert found["matches"][0]["id"] == product_id
            assert client.delete(f"/v1/products/{path}").status_code == 204
            assert client.get(f"/v1/products/{path}").status_code == 404


@pytest.mark.parametrize("product_id", ["nul\x00byte", "x" * 10_000, "line\nbreak"])
def test_ids_with_control_characters_or_10_kb_are_refused(client: TestClient, product_id: str) -> None:
    path = in_path(product_id)
    created = client.put(f"/v1/products/{path}", data={"fields": '{"name": "bad id"}'})
    # a newline never reaches a route (no route matches it: 404); the others are refused by the id check
    expected = (404, "not_found") if "\n" in product_id else (400, "invalid_query")
    assert (created.status_code, error_code(created)) == expected, created.text
    assert client.get(f"/v1/products/{path}").status_code == 404
    assert client.post("/v1/match/text", json={"text": "bad id", "top_k": 5}).status_code == 200
