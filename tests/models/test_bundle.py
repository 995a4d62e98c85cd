"""Bundles: self-contained folders with a manifest whose fingerprint tracks the files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from prodmatch.errors import ModelUnavailableError, ProdmatchError
from prodmatch.models.bundle import MANIFEST_NAME, Bundle, fingerprint
from prodmatch.models.export import export_bundle
from prodmatch.models.factory import create_embedder
from prodmatch.models.registry import get_spec, load_registry


def test_registry_is_data_with_preprocessing() -> None:
    registry = load_registry()
    assert set(registry) == {
        "clip-vit-b-32",
        "clip-vit-b-32-random",
        "offline-effnet-minilm",
        "offline-effnet-lite1-minilm",
    }
    assert registry["clip-vit-b-32"].image.preprocess.interpolation == "bicubic"
    assert not registry["clip-vit-b-32-random"].for_matching and registry["clip-vit-b-32"].for_matching
    assert not registry["offline-effnet-minilm"].shared_space
    known = "known models: clip-vit-b-32, clip-vit-b-32-random, offline-effnet-lite1-minilm, offline-effnet-minilm"
    with pytest.raises(ValueError, match=known):
        get_spec("resnet")


def test_manifest_describes_the_bundle(offline_bundle: Bundle) -> None:
    manifest = json.loads((offline_bundle.folder / MANIFEST_NAME).read_text())
    assert manifest["name"] == "offline-effnet-minilm" and manifest["precision"] == "fp32"
    assert manifest["image"]["dims"] == 1280 and manifest["text"]["dims"] == 384
    assert manifest["image"]["preprocess"]["mean"] == [0.485, 0.456, 0.406]
    assert manifest["shared_space"] is False and len(manifest["fingerprint"]) == 16
    assert manifest["fingerprint"] == fingerprint(offline_bundle.folder, offline_bundle.manifest)


def test_fingerprint_changes_with_the_graph(offline_bundle: Bundle, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(offline_bundle.folder, copy)
    with open(copy / "text.onnx", "ab") as handle:
        handle.write(b"\0")
    assert fingerprint(copy, Bundle(copy).manifest) != offline_bundle.manifest.fingerprint


def test_incomplete_bundle_is_refused(offline_bundle: Bundle, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(offline_bundle.folder, copy)
    (copy / "tokenizer.json").unlink()
    with pytest.raises(ModelUnavailableError, match=r"tokenizer\.json is missing"):
        Bundle(copy)
    with pytest.raises(ModelUnavailableError, match="not a model bundle"):
        Bundle(tmp_path)


def test_static_int8_needs_calibration_photos(tmp_path: Path) -> None:
    with pytest.raises(ProdmatchError, match="--calibration-images"):
        export_bundle(get_spec("offline-effnet-minilm"), "int8", tmp_path / "b", "unused")
    assert not (tmp_path / "b").exists()


def test_unknown_backend_lists_the_valid_ones(offline_bundle: Bundle, base_settings: object) -> None:
    with pytest.raises(ValueError, match="valid backends: onnx, torch"):
        create_embedder(offline_bundle, base_settings, "tensorflow")  # type: ignore[arg-type]
