"""TritonEmbedder against a real Triton server (tritonserver from nvidia-pytriton, on CPU) serving the test
bundles: vectors equal to local ONNX Runtime over gRPC and HTTP, batches larger than the server's, concurrent
callers sharing dynamic batches, and clear errors for a wrong model, bundle or address."""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from prodmatch.config import Settings
from prodmatch.errors import ModelMismatchError, ModelServerUnavailableError, ModelUnavailableError
from prodmatch.models.bench import run_bench
from prodmatch.models.bundle import Bundle
from prodmatch.models.embedder import Embedder
from prodmatch.models.onnx_runtime import OnnxEmbedder
from prodmatch.models.triton.embedder import TritonEmbedder, TritonTarget
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


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    assert a.shape == b.shape
    return np.sum(a * b, axis=1)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
@pytest.mark.parametrize("bundle_fixture", ["offline_bundle", "clip_random_bundle"])
def test_vectors_equal_local_onnx_runtime(
    triton_server: TritonServer,
    photos: list[Image.Image],
    protocol: str,
    bundle_fixture: str,
    request: pytest.FixtureRequest,
) -> None:
    bundle: Bundle = request.getfixturevalue(bundle_fixture)
    local = OnnxEmbedder(bundle)
    remote = TritonEmbedder(bundle, triton_server.url(bundle.manifest.name, protocol))
    try:
        assert isinstance(remote, Embedder)
        assert cosines(remote.embed_images(photos), local.embed_images(photos)).min() >= 0.9999
        assert cosines(remote.embed_texts(TEXTS), local.embed_texts(TEXTS)).min() >= 0.9999
        assert remote.health() is None
    finally:
        remote.close()


def test_batches_larger_than_the_server_takes_and_concurrent_callers(
    triton_server: TritonServer, offline_bundle: Bundle
) -> None:
    local = OnnxEmbedder(offline_bundle)
    remote = TritonEmbedder(offline_bundle, triton_server.url(offline_bundle.manifest.name))
    texts = [f"product number {i} in blue" for i in range(70)]  # server max_batch is 32: three requests
    try:
        assert remote.text_tower.max_batch == 32
        expected = local.embed_texts(texts)
        assert cosines(remote.embed_texts(texts), expected).min() >= 0.9999
        # Four threads at once: Triton stacks their requests into shared batches (model.py splits them back).
        with ThreadPoolExecutor(4) as pool:
            parts = list(pool.map(remote.embed_texts, [texts[i::4] for i in range(4)]))
        for i, part in enumerate(parts):
            assert cosines(part, expected[i::4]).min() >= 0.9999
        assert remote.embed_texts([]).shape == (0, offline_bundle.manifest.text.dims)
    finally:
        remote.close()


def test_a_model_the_server_does_not_serve_is_named(triton_server: TritonServer, offline_bundle: Bundle) -> None:
    with pytest.raises(ModelUnavailableError, match="no ready model 'shoes_image'") as caught:
        TritonEmbedder(offline_bundle, triton_server.url("shoes"))
    assert f"{offline_bundle.manifest.name}_image" in str(caught.value)  # what it does serve


def test_a_server_model_from_another_bundle_is_refused(
    triton_server: TritonServer, offline_bundle: Bundle, clip_random_bundle: Bundle
) -> None:
    with pytest.raises(ModelMismatchError, match=clip_random_bundle.manifest.fingerprint):
        TritonEmbedder(clip_random_bundle, triton_server.url(offline_bundle.manifest.name, "http"))


@pytest.mark.parametrize("scheme", ["triton", "triton+http"])
def test_an_unreachable_server_is_unavailable_after_retries(offline_bundle: Bundle, scheme: str) -> None:
    url = f"{scheme}://127.0.0.1:{free_port()}/{offline_bundle.manifest.name}?retries=2&timeout_s=2"
    with pytest.raises(ModelServerUnavailableError, match=re.escape("127.0.0.1")):
        TritonEmbedder(offline_bundle, url)


def test_model_urls_are_parsed_or_refused() -> None:
    target = TritonTarget.parse("triton+http://gpu-box/clip?timeout_s=5&retries=1&version=2")
    assert (target.protocol, target.address, target.name, target.version) == ("http", "gpu-box:8000", "clip", "2")
    assert (target.timeout_s, target.retries) == (5.0, 1)
    assert TritonTarget.parse("triton://gpu-box/clip").address == "gpu-box:8001"
    for bad in ("http://gpu-box/clip", "triton://gpu-box", "triton://gpu-box/clip?retries=many"):
        with pytest.raises(ModelUnavailableError, match="model URL"):
            TritonTarget.parse(bad)


def test_model_bench_measures_the_triton_backend(
    triton_server: TritonServer, offline_bundle: Bundle, base_settings: Settings
) -> None:
    settings = base_settings.model_copy(update={"model_url": triton_server.url(offline_bundle.manifest.name, "http")})
    report = run_bench(str(offline_bundle.folder), settings, [1, 4], ["fp32"], ["triton"], repeats=1)
    rows = {(row["backend"], row["tower"], row["batch"]) for row in report["rows"]}
    assert rows == {("triton", tower, batch) for tower in ("image", "text") for batch in (1, 4)}
    assert all(row["items_per_s"] > 0 for row in report["rows"])
