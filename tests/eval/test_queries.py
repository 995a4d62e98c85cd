"""The altered-photo queries of `prodmatch eval`: the difficulty picks the alteration set, and no seed makes the
eval's queries the ones the decision was calibrated on."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from prodmatch.cli import app
from prodmatch.eval.queries import DIFFICULTIES, alteration, altered_photo, eval_queries, query_stream
from prodmatch.matching.simulation import build_queries
from prodmatch.models.preprocess import open_image
from prodmatch.stores.records import ImageRef, Product
from tests.fakes import FakeEmbedder, fake_manifest


@pytest.fixture(scope="module")
def products(shared_data: Path) -> list[Product]:
    photos = sorted((shared_data / "myntra-dev" / "images").glob("*.jpg"))[:5]
    return [Product(p.stem, p.stem, p.stem, {}, [ImageRef(str(p), "")]) for p in photos]


def jpeg_quality_estimate(photo: bytes) -> float:
    """The mean of the luminance quantisation table: larger for lower JPEG quality."""
    image = Image.open(io.BytesIO(photo))
    return float(np.mean(image.quantization[0]))  # type: ignore[attr-defined]


def pixel_change(product: Product, photo: bytes) -> float:
    """Mean absolute difference between the source photo and the altered one, both at 64x64."""
    source = open_image(product.images[0].path).resize((64, 64))
    altered = open_image(photo).resize((64, 64))
    return float(np.mean(np.abs(np.asarray(source, np.float32) - np.asarray(altered, np.float32))))


def test_difficulty_picks_the_alteration_set(products: list[Product]) -> None:
    easy = [altered_photo(p, query_stream(0, i), alteration("easy")) for i, p in enumerate(products)]
    hard = [altered_photo(p, query_stream(0, i), alteration("hard")) for i, p in enumerate(products)]
    assert all(a != b for a, b in zip(easy, hard, strict=True))
    # hard photos are recompressed at JPEG quality 20-50, easy ones at 50-85: coarser quantisation, every time
    assert min(map(jpeg_quality_estimate, hard)) > max(map(jpeg_quality_estimate, easy))
    # and they move further from the catalog photo on the whole (stacked warps, casts, blur, clutter)
    change = {name: np.mean([pixel_change(p, q) for p, q in zip(products, photos, strict=True)])
              for name, photos in (("easy", easy), ("hard", hard))}  # fmt: skip
    assert change["hard"] > change["easy"]
    assert set(DIFFICULTIES) == {"easy", "hard"}
    with pytest.raises(ValueError, match="unknown difficulty 'medium'"):
        alteration("medium")


@pytest.mark.parametrize("space", ["image", "text"])
def test_eval_queries_are_never_the_calibration_queries(products: list[Product], space: str) -> None:
    embedder = FakeEmbedder(fake_manifest(False))
    calibration_seed = 1  # matching.calibration's seed: an eval run with --seed 1 must still ask other queries
    products = [Product(p.id, f"kids blue {p.id} t-shirt cotton", "", {"colour": "Blue"}, p.images) for p in products]
    _, calibrated = build_queries(embedder, space, products, calibration_seed)
    evaluated = eval_queries(embedder, space, products, calibration_seed, "easy").vectors
    assert calibrated.shape == evaluated.shape
    same = np.isclose(np.sum(calibrated * evaluated, axis=1), 1.0, atol=1e-6)
    assert same.mean() < (0.5 if space == "text" else 0.01)  # a short text may come out the same by chance


def test_cli_refuses_an_unknown_difficulty_and_learning_without_photos(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["eval", str(tmp_path / "c.csv"), "--difficulty", "medium"])
    assert result.exit_code == 2 and "--difficulty must be one of: easy, hard" in result.output
    result = runner.invoke(app, ["eval", str(tmp_path / "c.csv"), "--learn-per-product", "2"])
    assert result.exit_code == 2 and "needs --queries-file" in result.output
