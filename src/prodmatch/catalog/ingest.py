"""Ingest a catalog: validate rows, skip unchanged products, embed the rest, upsert in batches.

Consistency: each batch is one metadata-store transaction that carries the vectors too, so the store is
always the whole truth; the vector indexes follow it and are saved every few batches. A crash or kill
between saves leaves indexes behind the store, and CatalogStores repairs them from stored vectors on the
next open. A re-run skips every product whose content hash is already stored, so it resumes.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from prodmatch.batching import batched
from prodmatch.catalog.readers import RawRow, read_catalog
from prodmatch.catalog.schema import ColumnMapping, ImageResolver, ProductDraft, RowError, to_draft
from prodmatch.config import RuntimeSettings
from prodmatch.errors import InvalidImageError
from prodmatch.models.embedder import Embedder
from prodmatch.models.preprocess import draft_side, open_image, signature
from prodmatch.stores.catalog_stores import CatalogStores
from prodmatch.stores.files import CatalogFiles
from prodmatch.stores.records import ImageRef, Product, ProductUpsert, SpaceVectors

_COLUMN_SAMPLE = 200
# Near-duplicate listings: an image is compared with its few nearest neighbours that score above the
# cosine pre-filter; the pair is the same photo when their 16x16 RGB thumbnails differ by at most
# SIGNATURE_MAX_DIFFERENCE levels (of 255) on average. On myntra-dev, re-encoded copies of one photo
# measure <= 0.4 and the closest distinct photos (white t-shirts on white) 2.5 and more.
NEAR_DUPLICATE_NEIGHBOURS = 6
NEAR_DUPLICATE_MIN_COSINE = 0.95
SIGNATURE_MAX_DIFFERENCE = 1.5


@dataclass
class ColumnOptions:
    id_col: str | None = None
    name_col: str | None = None
    image_col: str | None = None
    text_cols: list[str] | None = None


@dataclass
class Rejection:
    line: int
    id: str | None
    reason: str


@dataclass
class IngestReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    images: int = 0
    seconds: float = 0.0
    duplicate_groups: int = 0
    mapping: dict[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


ProgressCallback = Callable[[int, int], None]  # (rows done, images embedded) since the last call


@dataclass
class _Prepared:
    """A draft with its image bytes read and hashed."""

    draft: ProductDraft
    image_bytes: list[bytes]
    product: Product


class CatalogIngester:
    """Ingests rows into one catalog, BATCH_SIZE products per store transaction. The model is asked for only
    when something needs embedding (a re-run of an unchanged catalog never loads it)."""

    def __init__(
        self,
        stores: CatalogStores,
        embedder: Callable[[], Embedder],
        files: CatalogFiles,
        runtime: RuntimeSettings,
        batch_size: int = 32,
        save_every: int = 20,
        image_hook: Callable[[str, Image.Image], None] | None = None,
    ) -> None:
        self.stores = stores
        self.embedder = embedder
        self.files = files
        self.runtime = runtime
        self.batch_size = batch_size
        self.save_every = save_every
        # Called with (sha256, decoded image) for every image embedded: computes its local features (verification)
        self.image_hook = image_hook
        self._decode_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="decode")

    def ingest_file(
        self,
        catalog: Path,
        columns: ColumnOptions,
        images_root: Path | None = None,
        progress: ProgressCallback | None = None,
    ) -> IngestReport:
        """Read CATALOG and ingest every valid row; invalid rows are reported, never fatal."""
        rows = read_catalog(catalog)
        sample = list(itertools.islice(rows, _COLUMN_SAMPLE))
        if not sample:
            return IngestReport()  # an empty catalog is not an error: there is simply nothing to add
        mapping = ColumnMapping.detect(_columns(sample), **asdict(columns))
        resolver = ImageResolver(Path(catalog).resolve().parent, images_root)
        return self.ingest_rows(itertools.chain(sample, rows), mapping, resolver, progress)

    def ingest_rows(
        self,
        rows: Iterable[RawRow],
        mapping: ColumnMapping,
        resolver: ImageResolver,
        progress: ProgressCallback | None = None,
    ) -> IngestReport:
        report = IngestReport(mapping=asdict(mapping))
        return self.ingest_drafts(self._drafts(rows, mapping, resolver, report), report, progress)

    def ingest_drafts(
        self,
        drafts: Iterable[ProductDraft],
        report: IngestReport | None = None,
        progress: ProgressCallback | None = None,
    ) -> IngestReport:
        """Embed and store validated products, batch by batch; rejections are added to REPORT."""
        started = time.perf_counter()
        report = report or IngestReport()
        try:
            for number, batch in enumerate(batched(drafts, self.batch_size)):
                images = self._ingest_batch(batch, report)
                report.images += images
                if progress:
                    progress(len(batch), images)
                if (number + 1) % self.save_every == 0:
                    self.stores.save()
        finally:
            self.stores.save()
            report.seconds = round(time.perf_counter() - started, 3)
        report.duplicate_groups = len(self.stores.store.duplicate_groups())
        return report

    def _drafts(
        self, rows: Iterable[RawRow], mapping: ColumnMapping, resolver: ImageResolver, report: IngestReport
    ) -> Iterator[ProductDraft]:
        first_line: dict[str, int] = {}
        for row in rows:
            if row.error:
                report.rejected.append(Rejection(row.line, None, row.error))
                continue
            try:
                draft = to_draft(row.line, row.data, mapping, resolver)
            except RowError as exc:
                report.rejected.append(Rejection(row.line, _id_of(row, mapping), str(exc)))
                continue
            if draft.id in first_line:
                reason = f"duplicate id {draft.id!r} (first seen on line {first_line[draft.id]}); row skipped"
                report.rejected.append(Rejection(row.line, draft.id, reason))
                continue
            first_line[draft.id] = row.line
            yield draft

    def _ingest_batch(self, drafts: list[ProductDraft], report: IngestReport) -> int:
        prepared = [p for p in (self._prepare(d, report) for d in drafts) if p is not None]
        stored = self.stores.store.hashes([p.product.id for p in prepared])
        changed = [item for item in prepared if stored.get(item.product.id, ("", ""))[0] != item.product.content_hash]
        report.unchanged += len(prepared) - len(changed)
        self._carry_learned(changed)
        upserts = [
            ProductUpsert(i.product, None)
            for i in changed
            if stored.get(i.product.id, ("", ""))[1] == i.product.embed_hash
        ]
        kept = {upsert.product.id for upsert in upserts}
        upserts += self._embed([item for item in changed if item.product.id not in kept], report)
        changes = self.stores.upsert(upserts)
        if "image" in changes.added:
            self._link_near_duplicates(*changes.added["image"])
        for upsert in upserts:
            if upsert.product.id in stored:
                report.updated += 1
            else:
                report.added += 1
        return sum(len(u.product.images) for u in upserts if u.vectors is not None)

    def _carry_learned(self, items: list[_Prepared]) -> None:
        """A changed catalog row keeps the photos its product learned from feedback: they are not in the row."""
        stored = self.stores.store.get([item.product.id for item in items]) if items else {}
        for item in items:
            old = stored.get(item.product.id)
            present = {ref.sha256 for ref in item.product.images}
            for ref in old.images if old else []:
                if self.files.is_learned(ref.path) and ref.sha256 not in present and Path(ref.path).is_file():
                    item.product.images.append(ref)
                    item.image_bytes.append(Path(ref.path).read_bytes())

    def add_learned_photo(self, product: Product, path: Path) -> bool:
        """Add the photo at PATH to PRODUCT's images and re-embed it; the product's hashes stay those of its
        catalog row, so re-ingesting an unchanged catalog keeps the photo. False when it already has the photo."""
        blob = path.read_bytes()
        sha = hashlib.sha256(blob).hexdigest()
        if sha in {ref.sha256 for ref in product.images}:
            return False
        product.images = [*product.images, ImageRef(str(path.resolve()), sha)]
        draft = ProductDraft(0, product.id, product.name, product.text, [], [], product.attributes)
        blobs = [Path(ref.path).read_bytes() for ref in product.images[:-1]] + [blob]
        report = IngestReport()
        upserts = self._embed([_Prepared(draft, blobs, product)], report)
        if report.rejected:
            raise InvalidImageError(report.rejected[0].reason)
        self.stores.upsert(upserts)
        self.stores.save()
        return True

    def _link_near_duplicates(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        scores, found = self.stores.index("image").search(vectors, NEAR_DUPLICATE_NEIGHBOURS)
        pairs = [
            (int(own), int(other))
            for own, row_scores, row_ids in zip(ids, scores, found, strict=True)
            for score, other in zip(row_scores, row_ids, strict=True)
            if other >= 0 and other != own and score >= NEAR_DUPLICATE_MIN_COSINE
        ]
        if pairs:
            self.stores.store.link_near_duplicates(pairs, SIGNATURE_MAX_DIFFERENCE)

    def _prepare(self, draft: ProductDraft, report: IngestReport) -> _Prepared | None:
        """Read and hash the draft's image files; a file that cannot be read rejects the row."""
        try:
            blobs = [path.read_bytes() for path in draft.image_paths]
        except OSError as exc:
            report.rejected.append(Rejection(draft.line, draft.id, f"cannot read image: {exc}"))
            return None
        unique: dict[str, tuple[str, bytes]] = {}  # sha256 -> (resolved path, bytes); a file listed twice counts once
        for path, blob in zip(draft.image_paths, blobs, strict=True):
            unique.setdefault(hashlib.sha256(blob).hexdigest(), (str(path.resolve()), blob))
        images = [ImageRef(label, sha) for sha, (label, _blob) in unique.items()]
        embed_hash = _digest(draft.text, *unique)
        content_hash = _digest(
            embed_hash, draft.name or "", json.dumps(draft.attributes, sort_keys=True, default=str), *draft.image_labels
        )
        product = Product(draft.id, draft.name, draft.text, draft.attributes, images, content_hash, embed_hash)
        return _Prepared(draft, [blob for _label, blob in unique.values()], product)

    def _embed(self, items: list[_Prepared], report: IngestReport) -> list[ProductUpsert]:
        decoded = self._decode(items, report)
        items = [item for item in items if item.draft.id in decoded]
        if not items:
            return []
        embedder = self.embedder()
        images = [image for item in items for image in decoded[item.draft.id]]
        image_vectors = embedder.embed_images(images) if images else np.zeros((0, 1), np.float32)
        texted = [item for item in items if item.product.text]
        text_vectors = embedder.embed_texts([item.product.text for item in texted]) if texted else None
        text_rows = {item.draft.id: row for row, item in enumerate(texted)}
        upserts, offset = [], 0
        for item in items:
            count = len(decoded[item.draft.id])
            item.product.images = [
                replace(ref, signature=signature(image))
                for ref, image in zip(item.product.images, decoded[item.draft.id], strict=True)
            ]
            shas = [ref.sha256 for ref in item.product.images]
            vectors = [SpaceVectors("image", image_vectors[offset : offset + count], shas)] if count else []
            offset += count
            if text_vectors is not None and item.draft.id in text_rows:
                row = text_rows[item.draft.id]
                vectors.append(SpaceVectors("text", text_vectors[row : row + 1]))
            upserts.append(ProductUpsert(item.product, vectors))
        return upserts

    def _decode(self, items: list[_Prepared], report: IngestReport) -> dict[str, list[Image.Image]]:
        """Decode every image in parallel threads (PIL releases the GIL); a bad image rejects its row."""
        runtime = self.runtime
        short_side = draft_side(self.embedder().manifest.image.preprocess) if runtime.jpeg_draft else None

        def decode(ref: ImageRef, blob: bytes) -> Image.Image:
            image = open_image(blob, label=ref.path, max_pixels=runtime.max_image_pixels, draft_short_side=short_side)
            self.files.save_thumbnail(ref.sha256, image)  # here, in the pool, while the image is at hand
            if self.image_hook is not None:
                self.image_hook(ref.sha256, image)
            return image

        pending = {
            item.draft.id: [
                self._decode_pool.submit(decode, ref, blob)
                for ref, blob in zip(item.product.images, item.image_bytes, strict=True)
            ]
            for item in items
        }
        decoded: dict[str, list[Image.Image]] = {}
        for item in items:
            try:
                decoded[item.draft.id] = [future.result() for future in pending[item.draft.id]]
            except InvalidImageError as exc:
                report.rejected.append(Rejection(item.draft.line, item.draft.id, f"unusable image: {exc}"))
        return decoded


def _digest(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def _columns(sample: list[RawRow]) -> list[str]:
    columns: dict[str, None] = {}
    for row in sample:
        columns.update(dict.fromkeys(row.data))
    return list(columns)


def _id_of(row: RawRow, mapping: ColumnMapping) -> str | None:
    value = row.data.get(mapping.id)
    return None if value is None else str(value)
