"""The real CLIP loading path, exercised offline with a small CLIP checkpoint saved to a local folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from prodmatch.config import Settings
from prodmatch.errors import ModelUnavailableError
from prodmatch.models.factory import choose_default_model, create_embedder, ensure_bundle
from prodmatch.models.preprocess import open_image
from prodmatch.models.registry import get_spec
from prodmatch.models.weights import availability, resolve_clip_weights


@pytest.fixture(scope="module")
def local_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder laid out like the hub's openai/clip-vit-base-patch32: same input size, 512-d output, tiny towers."""
    import torch
    from transformers import AutoTokenizer, CLIPConfig, CLIPModel

    from prodmatch.models.torch_towers import _openai_bpe_vocab

    folder = tmp_path_factory.mktemp("clip-local")
    torch.manual_seed(1)
    config = CLIPConfig(
        text_config={"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2},
        vision_config={
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 224,
            "patch_size": 32,
        },
        projection_dim=512,
    )
    CLIPModel(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(_openai_bpe_vocab()).save_pretrained(folder)
    return folder


@pytest.fixture
def offline_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))


def test_missing_clip_weights_name_the_remedy(offline_hub: None, settings: Settings) -> None:
    status = availability(get_spec("clip-vit-b-32"), "openai/clip-vit-base-patch32")
    assert not status.available and "PRODMATCH_CLIP_WEIGHTS" in status.reason
    with pytest.raises(ModelUnavailableError, match="not cached on this machine"):
        resolve_clip_weights("openai/clip-vit-base-patch32", try_hub=True)
    with pytest.raises(ModelUnavailableError, match="is not available"):
        ensure_bundle("clip-vit-b-32", settings)


def test_default_model_falls_back_to_the_offline_pair_never_the_random_one(
    offline_hub: None, settings: Settings
) -> None:
    name, why = choose_default_model(settings)
    assert name == "offline-effnet-minilm" and "CLIP unavailable" in why


@pytest.mark.slow  # exports a real bundle
def test_clip_from_a_local_folder_exports_and_is_chosen_by_default(
    local_clip: Path, settings: Settings, offline_hub: None, myntra: Path
) -> None:
    local = settings.model_copy(update={"clip_weights": str(local_clip)})
    assert availability(get_spec("clip-vit-b-32"), str(local_clip)).available
    assert choose_default_model(local)[0] == "clip-vit-b-32"
    bundle = ensure_bundle("clip-vit-b-32", local, "fp32")
    assert bundle.manifest.name == "clip-vit-b-32" and bundle.manifest.shared_space
    onnx, torch_reference = create_embedder(bundle, local), create_embedder(bundle, local, "torch")
    images = [open_image(myntra / "images" / "36310.jpg")]
    texts = ["a yellow t-shirt", "blue jeans"]
    assert onnx.embed_images(images).shape == (1, 512)
    assert np.sum(onnx.embed_images(images) * torch_reference.embed_images(images)) >= 0.9999
    assert np.sum(onnx.embed_texts(texts) * torch_reference.embed_texts(texts), axis=1).min() >= 0.9999
