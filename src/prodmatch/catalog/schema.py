"""Map catalog columns to product fields and turn raw rows into validated product drafts."""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prodmatch.catalog.readers import RawRow, read_catalog
from prodmatch.errors import CatalogError

# Common spellings, matched case-insensitively with '_', '-' and spaces ignored; first match wins.
ID_NAMES = ("id", "productid", "sku", "itemid", "productcode")
NAME_NAMES = ("name", "title", "producttitle", "productname", "itemname")
IMAGE_NAMES = ("image", "imagepath", "images", "imagepaths", "imagefile", "img", "picture", "photo")
TEXT_NAMES = ("description", "productdescription", "desc", "text", "details")
_IMAGE_SEPARATOR = re.compile(r"\s*\|\s*")
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
COLUMN_SAMPLE = 200  # rows read to find the columns


def is_url(value: str) -> bool:
    return bool(_URL.match(value))


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name).lower()


def _find(columns: list[str], spellings: tuple[str, ...]) -> str | None:
    by_key = {_key(column): column for column in columns}
    return next((by_key[s] for s in spellings if s in by_key), None)


@dataclass(frozen=True)
class ColumnMapping:
    """Which catalog columns hold the id, name, image(s) and extra searchable text."""

    id: str
    name: str | None
    image: str | None
    text: tuple[str, ...] = ()

    @classmethod
    def detect(
        cls,
        columns: list[str],
        *,
        id_col: str | None = None,
        name_col: str | None = None,
        image_col: str | None = None,
        text_cols: list[str] | None = None,
    ) -> ColumnMapping:
        """Explicit names win; otherwise the common spellings. An explicit name that is absent is an error."""
        for given in [id_col, name_col, image_col, *(text_cols or [])]:
            if given and given not in columns:
                raise CatalogError(f"column {given!r} is not in the catalog; columns: {', '.join(columns)}")
        found_id = id_col or _find(columns, ID_NAMES)
        if not found_id:
            raise CatalogError(
                f"no id column found (tried id, product_id, ProductId, sku); use --id-col. "
                f"Columns: {', '.join(columns)}"
            )
        name = name_col or _find(columns, NAME_NAMES)
        text = (
            tuple(text_cols)
            if text_cols is not None
            else tuple(c for c in columns if _key(c) in TEXT_NAMES and c not in (found_id, name))
        )
        return cls(found_id, name, image_col or _find(columns, IMAGE_NAMES), text)


@dataclass
class ColumnOptions:
    id_col: str | None = None
    name_col: str | None = None
    image_col: str | None = None
    text_cols: list[str] | None = None


def detect_columns(catalog: Path, columns: ColumnOptions) -> tuple[ColumnMapping | None, Iterator[RawRow]]:
    """The column mapping from the catalog's first rows, and every row (streamed; the sample is not read twice).
    None for an empty catalog."""
    rows = read_catalog(catalog)
    sample = list(itertools.islice(rows, COLUMN_SAMPLE))
    if not sample:
        return None, iter(())
    names: dict[str, None] = {}
    for row in sample:
        names.update(dict.fromkeys(row.data))
    return ColumnMapping.detect(list(names), **asdict(columns)), itertools.chain(sample, rows)


@dataclass
class ProductDraft:
    """A catalog row, validated: what ingest embeds and stores."""

    line: int
    id: str
    name: str | None
    text: str
    image_paths: list[Path]
    image_labels: list[str]
    attributes: dict[str, Any] = field(default_factory=dict)


class RowError(ValueError):
    """A row that cannot become a product; the message is the reason shown to the user."""


class ImageResolver:
    """Finds a row's image files: relative to --images-root (else the catalog's folder), also under images/.

    An absolute path that does not exist (a catalog exported from another machine) is looked up by file
    name in the same places.
    """

    def __init__(
        self, catalog_dir: Path, images_root: Path | None, downloaded: Callable[[str], Path] | None = None
    ) -> None:
        self.base = images_root or catalog_dir
        self._bases = [self.base, self.base / "images"]
        # URL -> its downloaded file (catalog.feed.DownloadedImages), raising RowError when it has none.
        self.downloaded = downloaded

    def resolve(self, value: str) -> Path:
        if is_url(value):
            if self.downloaded is None:
                raise RowError(f"image {value!r} is a URL and URL images were not downloaded for this ingest")
            return self.downloaded(value)
        path = Path(value).expanduser()
        if not path.is_absolute() and ".." in path.parts:
            # a relative name is looked up under the catalog's folder, never beside or above it
            raise RowError(f"image {value!r} leaves the catalog's folder; give a path inside it or an absolute one")
        if path.is_absolute():
            if path.is_file():
                return path
            candidates = [base / path.name for base in self._bases]
        else:
            candidates = [base / path for base in self._bases]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise RowError(f"image {value!r} not found (looked in {', '.join(str(b) for b in self._bases)})")
        return found


def to_draft(line: int, data: dict[str, Any], mapping: ColumnMapping, resolver: ImageResolver) -> ProductDraft:
    """Validate one catalog row; RowError says why it cannot be ingested."""
    raw_id = data.get(mapping.id)
    if raw_id is None or str(raw_id).strip() == "":
        raise RowError(f"missing id (column {mapping.id!r})")
    name = _text(data.get(mapping.name)) if mapping.name else None
    labels = image_values(data.get(mapping.image)) if mapping.image else []
    used = {mapping.id, mapping.name, mapping.image}
    attributes = {key: value for key, value in data.items() if key not in used}
    text_parts = [_text(data.get(column)) for column in mapping.text]
    if not labels and not _joined_text(name, text_parts):
        raise RowError("nothing to match on: no image and no name or text")
    paths = [resolver.resolve(label) for label in labels]
    return product_draft(line, str(raw_id).strip(), name, text_parts, attributes, paths, labels)


def draft_from_fields(product_id: str, fields: dict[str, Any], images: list[Path]) -> ProductDraft:
    """A product given field by field (the API's online upsert): "name", "description" and any attributes."""
    if not product_id.strip():
        raise RowError("missing id")
    name = _text(fields.get("name"))
    attributes = {key: value for key, value in fields.items() if key not in ("id", "name", "image")}
    text_parts = [_text(fields.get("description"))]
    return product_draft(0, product_id, name, text_parts, attributes, images, [str(path) for path in images])


# Ids travel in URLs, logs and every store; a bound keeps a 10 kB id from becoming every store's problem.
MAX_ID_CHARS = 512
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_product_id(product_id: str) -> None:
    """RowError for an id no store or URL can carry safely: control characters (NUL: PostgreSQL refuses it, a
    newline forges log lines) or over MAX_ID_CHARS. "/", "%" and other printable characters are fine."""
    if _CONTROL.search(product_id):
        raise RowError(f"id {product_id[:40]!r} holds a control character")
    if len(product_id) > MAX_ID_CHARS:
        raise RowError(f"id is {len(product_id)} characters long; the most is {MAX_ID_CHARS}")


def product_draft(
    line: int,
    product_id: str,
    name: str | None,
    text_parts: list[str | None],
    attributes: dict[str, Any],
    paths: list[Path],
    labels: list[str],
) -> ProductDraft:
    """The one constructor of drafts: searchable text is the name plus the text columns; empty values are dropped."""
    check_product_id(product_id)
    text = _joined_text(name, text_parts)
    if not paths and not text:
        raise RowError("nothing to match on: no image and no name or text")
    kept = {key: value for key, value in attributes.items() if value not in (None, "")}
    return ProductDraft(line, product_id, name, text, paths, labels, kept)


def _joined_text(name: str | None, text_parts: list[str | None]) -> str:
    return ". ".join(part for part in [name, *text_parts] if part)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def image_values(value: Any) -> list[str]:
    """A product's images: a JSON list, or one string with '|' between paths."""
    if value is None:
        return []
    values = value if isinstance(value, list) else _IMAGE_SEPARATOR.split(str(value))
    return [str(v).strip() for v in values if str(v).strip()]


def content_digest(*parts: str) -> str:
    """A sha256 over PARTS, each ended by NUL so that ("ab", "c") and ("a", "bc") differ."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def row_id(row: RawRow, mapping: ColumnMapping) -> str | None:
    """The row's id as written in the catalog, for a rejection's message (None when the row has none)."""
    value = row.data.get(mapping.id)
    return None if value is None else str(value)
