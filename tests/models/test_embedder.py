"""TowerEmbedder, the one Embedder: batching, casts, padding, normalising and empty batches, first over recording
sessions (exact checks of what each session is sent), then over every in-process backend's real sessions."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from prodmatch.batching import slices
from prodmatch.config import Settings
from prodmatch.errors import InvalidTextError, ModelUnavailableError
from prodmatch.models.bundle import Bundle
from prodmatch.models.embedder import Embedder, TowerEmbedder
from prodmatch.models.factory import create_embedder
from prodmatch.models.onnx_runtime import OnnxSession
from prodmatch.models.runtime import ModelSession
from prodmatch.models.tokenize import TextTokenizer

TEXTS = [f"product number {i} in {'deep ' * (i % 7)}blue" for i in range(45)]


class RecordingSession:
    """A ModelSession whose vectors are a fixed function of its inputs, recording every call."""

    def __init__(self, inputs: dict[str, Any], max_batch: int, dims: int, pad_to_multiple_of: int = 1) -> None:
        self.inputs = {name: np.dtype(dtype) for name, dtype in inputs.items()}
        self.max_batch = max_batch
        self.pad_to_multiple_of = pad_to_multiple_of
        self.dims = dims
        self.calls: list[dict[str, np.ndarray]] = []
        self.unready: str | None = None
        self.closed = False

    def run(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        self.calls.append(dict(inputs))
        first = next(iter(inputs.values()))
        assert len(first) <= self.max_batch
        # 3 * (sum of each row) in every column, plus the column index: distinct rows, norm far from 1
        sums = first.reshape(len(first), -1).astype(np.float64).sum(axis=1, keepdims=True)
        vectors: np.ndarray = (3 * sums + np.arange(self.dims)).astype(np.float32)
        return vectors

    def health(self) -> str | None:
        return self.unready

    def close(self) -> None:
        self.closed = True


@pytest.fixture(scope="module")
def tokenizer(offline_bundle: Bundle) -> TextTokenizer:
    return TextTokenizer(offline_bundle.tokenizer_file, offline_bundle.manifest.text)


def wrapper(bundle: Bundle, tokenizer: TextTokenizer, image: RecordingSession, text: RecordingSession) -> TowerEmbedder:
    return TowerEmbedder(bundle.manifest, image, text, tokenizer)


@pytest.fixture
def image_session() -> RecordingSession:
    return RecordingSession({"pixel_values": np.float32}, max_batch=4, dims=1280)


@pytest.fixture
def text_session() -> RecordingSession:
    return RecordingSession(
        {"input_ids": np.int32, "attention_mask": np.int64, "token_type_ids": np.int64}, max_batch=8, dims=384
    )


def test_batches_larger_than_max_batch_go_in_max_batch_pieces_in_order(
    offline_bundle: Bundle, tokenizer: TextTokenizer, image_session: RecordingSession, text_session: RecordingSession
) -> None:
    embedder = wrapper(offline_bundle, tokenizer, image_session, text_session)
    pixels = np.random.default_rng(0).standard_normal((10, 3, 8, 8)).astype(np.float32)
    vectors = embedder.embed_pixels(pixels)
    assert [len(call["pixel_values"]) for call in image_session.calls] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([c["pixel_values"] for c in image_session.calls]), pixels)
    assert vectors.shape == (10, 1280) and vectors.dtype == np.float32
    expected = 3 * pixels.reshape(10, -1).astype(np.float64).sum(axis=1, keepdims=True) + np.arange(1280)
    np.testing.assert_allclose(vectors, expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-6)

    texts = embedder.embed_texts(TEXTS)
    assert [len(call["input_ids"]) for call in text_session.calls] == [8, 8, 8, 8, 8, 5]
    assert texts.shape == (45, 384)
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1.0, rtol=1e-6)
    one_by_one = np.concatenate([embedder.embed_texts([text]) for text in TEXTS])
    np.testing.assert_allclose(texts, one_by_one, atol=1e-6)  # rows stay with their texts


def test_empty_batches_are_empty_float32_arrays_without_a_model_call(
    offline_bundle: Bundle, tokenizer: TextTokenizer, image_session: RecordingSession, text_session: RecordingSession
) -> None:
    embedder = wrapper(offline_bundle, tokenizer, image_session, text_session)
    for vectors, dims in (
        (embedder.embed_images([]), 1280),
        (embedder.embed_pixels(np.zeros((0, 3, 224, 224), np.float32)), 1280),
        (embedder.embed_texts([]), 384),
    ):
        assert vectors.shape == (0, dims) and vectors.dtype == np.float32
    assert image_session.calls == [] and text_session.calls == []


def test_inputs_are_cast_to_the_dtypes_the_session_takes_and_only_those(
    offline_bundle: Bundle, tokenizer: TextTokenizer, image_session: RecordingSession
) -> None:
    clip_like = RecordingSession({"input_ids": np.int32}, max_batch=8, dims=384)
    embedder = wrapper(offline_bundle, tokenizer, image_session, clip_like)
    embedder.embed_texts(TEXTS[:3])
    embedder.embed_pixels(np.ones((2, 3, 8, 8), np.float64)[:, :, ::2, ::2])  # float64, not contiguous
    (call,) = clip_like.calls
    assert set(call) == {"input_ids"} and call["input_ids"].dtype == np.int32
    np.testing.assert_array_equal(call["input_ids"], tokenizer.encode(TEXTS[:3])["input_ids"])
    (pixels,) = image_session.calls
    assert pixels["pixel_values"].dtype == np.float32 and pixels["pixel_values"].flags.c_contiguous


@pytest.mark.parametrize(("multiple", "widths"), [(1, None), (16, 16)])
def test_texts_are_padded_to_the_sessions_length_bucket(
    offline_bundle: Bundle, tokenizer: TextTokenizer, image_session: RecordingSession, multiple: int, widths: int | None
) -> None:
    session = RecordingSession({"input_ids": np.int64, "attention_mask": np.int64}, 8, 384, multiple)
    embedder = wrapper(offline_bundle, tokenizer, image_session, session)
    vectors = embedder.embed_texts(TEXTS[:20])
    for call, chunk in zip(session.calls, slices(TEXTS[:20], 8), strict=True):
        longest = int(tokenizer.encode(chunk)["attention_mask"].sum(axis=1).max())
        width = call["input_ids"].shape[1]
        assert width == (-(-longest // widths) * widths if widths else longest)
        assert call["attention_mask"].sum() == tokenizer.encode(chunk)["attention_mask"].sum()  # padding is masked
    assert vectors.shape == (20, 384)


def test_invalid_text_is_refused_even_in_a_large_batch(
    offline_bundle: Bundle, tokenizer: TextTokenizer, image_session: RecordingSession, text_session: RecordingSession
) -> None:
    embedder = wrapper(offline_bundle, tokenizer, image_session, text_session)
    with pytest.raises(InvalidTextError, match="empty"):
        embedder.embed_texts([*TEXTS[:9], "   "])


def test_health_names_the_first_unready_tower_and_close_closes_both(
    offline_bundle: Bundle, tokenizer: TextTokenizer, image_session: RecordingSession, text_session: RecordingSession
) -> None:
    embedder = wrapper(offline_bundle, tokenizer, image_session, text_session)
    assert embedder.health() is None
    text_session.unready = "text model not ready"
    assert embedder.health() == "text model not ready"
    image_session.unready = "server down"
    assert embedder.health() == "server down"
    embedder.close()
    assert image_session.closed and text_session.closed


def test_sessions_whose_inputs_the_wrapper_cannot_feed_are_refused(
    offline_bundle: Bundle, tokenizer: TextTokenizer, image_session: RecordingSession
) -> None:
    two_inputs = RecordingSession({"pixel_values": np.float32, "mask": np.float32}, 4, 1280)
    with pytest.raises(ModelUnavailableError, match="image model takes"):
        wrapper(offline_bundle, tokenizer, two_inputs, image_session)
    unknown = RecordingSession({"input_ids": np.int64, "position_ids": np.int64}, 4, 384)
    with pytest.raises(ModelUnavailableError, match="position_ids"):
        wrapper(offline_bundle, tokenizer, image_session, unknown)


# Real sessions: the in-process backends through the same wrapper.


@pytest.fixture(scope="module")
def photos(myntra: Path) -> list[Image.Image]:
    return [Image.open(path).convert("RGB") for path in sorted((myntra / "images").glob("*.jpg"))[:5]]


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_each_in_process_backend_runs_through_the_one_wrapper(
    backend: str, offline_bundle: Bundle, base_settings: Settings, photos: list[Image.Image]
) -> None:
    small = base_settings.model_copy(update={"runtime": base_settings.runtime.model_copy(update={"max_batch": 2})})
    chunked = create_embedder(offline_bundle, small, backend)  # type: ignore[arg-type]
    whole = create_embedder(offline_bundle, base_settings, backend)  # type: ignore[arg-type]
    assert isinstance(chunked, TowerEmbedder) and isinstance(chunked, Embedder)
    assert isinstance(chunked.image_session, ModelSession) and chunked.image_session.max_batch == 2
    assert chunked.text_session.pad_to_multiple_of == 1  # in process: pad only to the longest text
    pieces = chunked.embed_images(photos)
    np.testing.assert_allclose(pieces, whole.embed_images(photos), atol=2e-5)  # 5 photos in 3 runs, or in 1
    np.testing.assert_allclose(chunked.embed_texts(TEXTS[:5]), whole.embed_texts(TEXTS[:5]), atol=2e-5)
    np.testing.assert_allclose(np.linalg.norm(pieces, axis=1), 1.0, rtol=1e-5)
    assert chunked.embed_texts([]).shape == (0, 384) and chunked.embed_images([]).shape == (0, 1280)
    assert chunked.health() is None
    chunked.close()


def test_onnx_sessions_read_their_inputs_from_the_graphs(offline_bundle: Bundle, clip_random_bundle: Bundle) -> None:
    text = OnnxSession(offline_bundle.text_graph)
    assert dict(text.inputs) == {name: np.dtype(np.int64) for name in ("input_ids", "attention_mask", "token_type_ids")}
    assert dict(OnnxSession(clip_random_bundle.text_graph).inputs) == {"input_ids": np.dtype(np.int64)}
    image = OnnxSession(offline_bundle.image_graph)
    assert dict(image.inputs) == {"pixel_values": np.dtype(np.float32)}
    image.close()
    with pytest.raises(RuntimeError, match="closed"):
        image.run({"pixel_values": np.zeros((1, 3, 224, 224), np.float32)})
