"""Column detection, row validation and image path resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from prodmatch.catalog.schema import ColumnMapping, ImageResolver, RowError, to_draft
from prodmatch.errors import CatalogError


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        (["ProductId", "ProductTitle", "Image", "ImageURL"], ("ProductId", "ProductTitle", "Image")),
        (["sku", "title", "image_path", "description"], ("sku", "title", "image_path")),
        (["product_id", "name", "images"], ("product_id", "name", "images")),
    ],
)
def test_common_spellings_are_detected(columns: list[str], expected: tuple[str, str, str]) -> None:
    mapping = ColumnMapping.detect(columns)
    assert (mapping.id, mapping.name, mapping.image) == expected


def test_description_columns_become_text_unless_given() -> None:
    assert ColumnMapping.detect(["id", "name", "description"]).text == ("description",)
    assert ColumnMapping.detect(["id", "name", "description", "brand"], text_cols=["brand"]).text == ("brand",)


def test_explicit_column_that_is_absent_is_an_error() -> None:
    with pytest.raises(CatalogError, match="'Nope' is not in the catalog"):
        ColumnMapping.detect(["id", "name"], image_col="Nope")


def test_no_id_column_is_an_error() -> None:
    with pytest.raises(CatalogError, match="no id column"):
        ColumnMapping.detect(["title", "image"])


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    (tmp_path / "images").mkdir()
    for name in ("a.jpg", "b c.jpg"):
        (tmp_path / "images" / name).write_bytes(b"x")
    (tmp_path / "top.jpg").write_bytes(b"x")
    return tmp_path


def test_image_paths_resolve_beside_the_catalog_and_under_images(catalog_dir: Path) -> None:
    resolver = ImageResolver(catalog_dir, None)
    assert resolver.resolve("top.jpg") == catalog_dir / "top.jpg"
    assert resolver.resolve("a.jpg") == catalog_dir / "images" / "a.jpg"
    assert resolver.resolve("/home/someone/else/b c.jpg") == catalog_dir / "images" / "b c.jpg"


def test_images_root_overrides_the_catalog_folder(catalog_dir: Path, tmp_path: Path) -> None:
    resolver = ImageResolver(Path("/nonexistent"), catalog_dir / "images")
    assert resolver.resolve("a.jpg") == catalog_dir / "images" / "a.jpg"


def test_missing_image_and_urls_are_row_errors(catalog_dir: Path) -> None:
    resolver = ImageResolver(catalog_dir, None)
    with pytest.raises(RowError, match="not found"):
        resolver.resolve("missing.jpg")
    with pytest.raises(RowError, match="is a URL"):
        resolver.resolve("https://example.invalid/a.jpg")


def test_relative_image_names_cannot_climb_out_of_the_catalog_folder(catalog_dir: Path) -> None:
    (catalog_dir.parent / "secret.jpg").write_bytes(b"x")  # a real file beside the catalog's folder
    resolver = ImageResolver(catalog_dir / "images", None)
    for name in ("../secret.jpg", "../../secret.jpg", "a/../../../secret.jpg"):
        with pytest.raises(RowError, match="leaves the catalog's folder"):
            resolver.resolve(name)


@pytest.mark.parametrize("product_id", ["nul\x00", "new\nline", "x" * 513])
def test_ids_with_control_characters_or_over_512_chars_are_row_errors(catalog_dir: Path, product_id: str) -> None:
    mapping = ColumnMapping(id="id", name="name", image=None)
    with pytest.raises(RowError, match=r"control character|characters long"):
        to_draft(2, {"id": product_id, "name": "shirt"}, mapping, ImageResolver(catalog_dir, None))
    ok = to_draft(2, {"id": "sku/1 50%", "name": "shirt"}, mapping, ImageResolver(catalog_dir, None))
    assert ok.id == "sku/1 50%"


def test_draft_keeps_other_columns_as_attributes_and_lists_several_images(catalog_dir: Path) -> None:
    mapping = ColumnMapping("id", "name", "image", ("description",))
    data = {
        "id": 7,
        "name": "Red shirt",
        "image": "a.jpg | top.jpg",
        "description": "Cotton",
        "price": 9.5,
        "colour": "Red",
        "empty": None,
    }
    draft = to_draft(3, data, mapping, ImageResolver(catalog_dir, None))
    assert draft.id == "7" and draft.text == "Red shirt. Cotton"
    assert draft.attributes == {"description": "Cotton", "price": 9.5, "colour": "Red"}
    assert draft.image_paths == [catalog_dir / "images" / "a.jpg", catalog_dir / "top.jpg"]


def test_row_without_id_or_anything_to_match_is_rejected(catalog_dir: Path) -> None:
    mapping = ColumnMapping("id", "name", "image")
    resolver = ImageResolver(catalog_dir, None)
    with pytest.raises(RowError, match="missing id"):
        to_draft(2, {"id": " ", "name": "x"}, mapping, resolver)
    with pytest.raises(RowError, match="nothing to match on"):
        to_draft(2, {"id": "1"}, mapping, resolver)
