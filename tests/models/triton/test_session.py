"""Triton tower sessions through the one Embedder wrapper, against a real Triton server (tritonserver from
nvidia-pytriton, on CPU) serving the test bundles: vectors equal to local ONNX Runtime over gRPC and HTTP, texts
sent in 16-token buckets, batches larger than the server's, concurrent callers sharing dynamic batches, and
clear errors for a wrong model, bundle or address."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from prodmatch.bench.models import BenchPlan, run_bench
from prodmatch.config import Settings
from prodmatch.errors import ModelMismatchError, ModelServerUnavailableError, ModelUnavailableError
from prodmatch.models.bundle import Bundle
from prodmatch.models.embedder import Embedder, TowerEmbedder
from prodmatch.models.factory import bundle_embedder, create_embedder
from prodmatch.models.runtime import ModelSession
from prodmatch.models.triton.session import TEXT_LENGTH_BUCKET, TritonTowerSession, open_triton_sessions
from tests.api.server import free_port
from tests.servers import TritonServer

TEXTS = [
    "Nike men's black running shoes",
    "ünïcödé 🎉 &amp; <b>HTML</b> caf\u00c3\u00a9",  # mojibake and markup, as in real feeds
    "a very long description " * 40,  # truncated to the model's length
    "red",
]


@pytest.fixture(scope="module")
def triton_server(triton_repository: Path) -> Iterator[TritonServer]:
    server = TritonServer(triton_repository)
    yield server
    server.close()


@pytest.fixture(scope="module")
def photos(myntra: Path) -> list[Image.Image]:
    return [Image.open(path).convert("RGB") for path in sorted((myntra / "images").glob("*.jpg"))[:6]]


def triton_embedder(bundle: Bundle, settings: Settings, url: str) -> TowerEmbedder:
    embedder = create_embedder(bundle, settings.model_copy(update={"model_url": url}))  # model_url: triton
    assert isinstance(embedder, TowerEmbedder) and isinstance(embedder.text_session, TritonTowerSession)
    return embedder


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    assert a.shape == b.shape
    products: np.ndarray = np.sum(a * b, axis=1)
    return products


class Widths:
    """Wraps a session, recording the token width of each text batch it is sent."""

    def __init__(self, session: TritonTowerSession) -> None:
        self.session = session
        self.inputs, self.max_batch = session.inputs, session.max_batch
        self.pad_to_multiple_of = session.pad_to_multiple_of
        self.seen: list[int] = []

    def run(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        self.seen.append(inputs["input_ids"].shape[1])
        vectors: np.ndarray = self.session.run(inputs)
        return vectors

    def health(self) -> str | None:
        return self.session.health()

    def close(self) -> None:
        self.session.close()


@pytest.mark.parametrize("protocol", ["grpc", "http"])
@pytest.mark.parametrize("bundle_fixture", ["offline_bundle", "clip_random_bundle"])
def test_vectors_equal_local_onnx_runtime(
    triton_server: TritonServer,
    photos: list[Image.Image],
    protocol: str,
    bundle_fixture: str,
    request: pytest.FixtureRequest,
    base_settings: Settings,
) -> None:
    bundle: Bundle = request.getfixturevalue(bundle_fixture)
    local = create_embedder(bundle, base_settings, "onnx")
    remote = triton_embedder(bundle, base_settings, triton_server.url(bundle.manifest.name, protocol))
    try:
        assert isinstance(remote, Embedder) and isinstance(remote.image_session, ModelSession)
        assert cosines(remote.embed_images(photos), local.embed_images(photos)).min() >= 0.9999
        assert cosines(remote.embed_texts(TEXTS), local.embed_texts(TEXTS)).min() >= 0.9999
        assert remote.health() is None
    finally:
        remote.close()


def test_texts_go_in_length_buckets_and_give_the_unpadded_vectors(
    triton_server: TritonServer, offline_bundle: Bundle, base_settings: Settings
) -> None:
    image, text = open_triton_sessions(offline_bundle.manifest, triton_server.url(offline_bundle.manifest.name))
    assert text.pad_to_multiple_of == TEXT_LENGTH_BUCKET == 16
    widths = Widths(text)
    remote = bundle_embedder(offline_bundle, image, widths)
    local = create_embedder(offline_bundle, base_settings, "onnx")
    try:
        for batch in (["red"], TEXTS[:2], ["word " * 20], ["a very long description " * 40], ["word " * 300]):
            assert cosines(remote.embed_texts(batch), local.embed_texts(batch)).min() >= 0.9999
        # 3, 18, 22 and 162 tokens round up to 16, 32, 32, 176; 302 are cut to MiniLM's 256 (a multiple of 16)
        assert widths.seen == [16, 32, 32, 176, 256]
    finally:
        remote.close()


def test_batches_larger_than_the_server_takes_and_concurrent_callers(
    triton_server: TritonServer, offline_bundle: Bundle, base_settings: Settings, photos: list[Image.Image]
) -> None:
    local = create_embedder(offline_bundle, base_settings, "onnx")
    remote = triton_embedder(offline_bundle, base_settings, triton_server.url(offline_bundle.manifest.name))
    texts = [f"product number {i} in blue" for i in range(70)]  # server max_batch is 32: three requests
    try:
        assert remote.text_session.max_batch == 32 and remote.image_session.max_batch == 32
        expected = local.embed_texts(texts)
        assert cosines(remote.embed_texts(texts), expected).min() >= 0.9999
        pixels = remote.pixels(photos * 6)  # 36 photos: two requests
        assert cosines(remote.embed_pixels(pixels), local.embed_pixels(pixels)).min() >= 0.9999
        # Four threads at once: Triton stacks their requests into shared batches (model.py splits them back).
        with ThreadPoolExecutor(4) as pool:
            parts = list(pool.map(remote.embed_texts, [texts[i::4] for i in range(4)]))
        for i, part in enumerate(parts):
            assert cosines(part, expected[i::4]).min() >= 0.9999
        assert remote.embed_texts([]).shape == (0, offline_bundle.manifest.text.dims)
        assert remote.embed_images([]).shape == (0, offline_bundle.manifest.image.dims)
    finally:
        remote.close()


def test_a_model_the_server_does_not_serve_is_named(triton_server: TritonServer, offline_bundle: Bundle) -> None:
    with pytest.raises(ModelUnavailableError, match="no ready model 'shoes_image'") as caught:
        open_triton_sessions(offline_bundle.manifest, triton_server.url("shoes"))
    assert f"{offline_bundle.manifest.name}_image" in str(caught.value)  # what it does serve


def test_a_server_model_from_another_bundle_is_refused(
    triton_server: TritonServer, offline_bundle: Bundle, clip_random_bundle: Bundle
) -> None:
    with pytest.raises(ModelMismatchError, match=clip_random_bundle.manifest.fingerprint):
        open_triton_sessions(clip_random_bundle.manifest, triton_server.url(offline_bundle.manifest.name, "http"))


@pytest.mark.parametrize("scheme", ["triton", "triton+http"])
def test_an_unreachable_server_is_unavailable_after_retries(
    offline_bundle: Bundle, base_settings: Settings, scheme: str
) -> None:
    url = f"{scheme}://127.0.0.1:{free_port()}/{offline_bundle.manifest.name}?retries=2&timeout_s=2"
    with pytest.raises(ModelServerUnavailableError, match=re.escape("127.0.0.1")):
        create_embedder(offline_bundle, base_settings.model_copy(update={"model_url": url}))


def test_model_bench_measures_the_triton_backend(
    triton_server: TritonServer, offline_bundle: Bundle, base_settings: Settings
) -> None:
    settings = base_settings.model_copy(update={"model_url": triton_server.url(offline_bundle.manifest.name, "http")})
    report = run_bench(str(offline_bundle.folder), settings, BenchPlan([1, 4], ["fp32"], ["triton"], repeats=1))
    rows = {(row["backend"], row["tower"], row["batch"]) for row in report["rows"]}
    assert rows == {("triton", tower, batch) for tower in ("image", "text") for batch in (1, 4)}
    assert all(row["items_per_s"] > 0 for row in report["rows"])
