"""Ingest a catalog: validate rows, skip unchanged products, embed the rest, upsert in batches.

Consistency: each batch is one metadata-store transaction that carries the vectors too, so the store is
always the whole truth; the vector indexes follow it and are saved every few batches. A crash or kill
between saves leaves indexes behind the store, and CatalogStores repairs them from stored vectors on the
next open. A re-run skips every product whose content hash is already stored, so it resumes.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from prodmatch.batching import batched
from prodmatch.catalog.download_safety import redact_url
from prodmatch.catalog.pipeline import ReadAhead, SerialWriter
from prodmatch.catalog.readers import RawRow
from prodmatch.catalog.schema import (
    ColumnMapping,
    ColumnOptions,
    ImageResolver,
    ProductDraft,
    RowError,
    content_digest,
    detect_columns,
    is_url,
    row_id,
    to_draft,
)
from prodmatch.config import RuntimeSettings
from prodmatch.errors import InvalidImageError
from prodmatch.models.embedder import Embedder
from prodmatch.models.preprocess import draft_side, open_image, signature
from prodmatch.stores.catalog_stores import CatalogStores
from prodmatch.stores.files import THUMBNAIL_SIDE, CatalogFiles
from prodmatch.stores.records import ImageRef, Product, ProductUpsert, SpaceVectors

__all__ = ["CatalogIngester", "ColumnOptions", "IngestReport", "ProgressCallback", "Rejection"]

# Near-duplicate listings: an image is compared with its few nearest neighbours that score above the
# cosine pre-filter; the pair is the same photo when their 16x16 RGB thumbnails differ by at most
# SIGNATURE_MAX_DIFFERENCE levels (of 255) on average. On myntra-dev, re-encoded copies of one photo
# measure <= 0.4 and the closest distinct photos (white t-shirts on white) 2.5 and more.
NEAR_DUPLICATE_NEIGHBOURS = 6
NEAR_DUPLICATE_MIN_COSINE = 0.95
SIGNATURE_MAX_DIFFERENCE = 1.5
READ_AHEAD, LOOKAHEAD = 2, 1  # pipeline bounds: batches read ahead, batches decoding while the model embeds one


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


@dataclass
class _Batch:
    rows: int  # catalog rows it came from, rejected ones included (for progress)
    items: list[_Prepared]


@dataclass
class _Decoded:
    """One image as the model and the store need it: preprocessed pixels (1xCxHxW) and its 16x16 signature."""

    pixels: np.ndarray
    signature: bytes


@dataclass
class _Decoding:
    item: _Prepared
    futures: list[Future[_Decoded]]


@dataclass
class _Pending:
    """A batch between its start (decoding on the pool) and its finish (embedded and written)."""

    rows: int
    stored_ids: set[str]
    upserts: list[ProductUpsert]  # metadata-only changes: stored vectors kept
    decoding: list[_Decoding]

    def cancel(self) -> None:
        for future in (future for entry in self.decoding for future in entry.futures):
            future.cancel()


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
        # Decoding and resizing release the GIL, so threads use every core; the model's own threads share them.
        self._pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="decode")
        self._batches = 0
        # Called with (sha256, decoded image) for every image embedded: computes its local features (verification)
        self.image_hook = image_hook

    def ingest_file(
        self,
        catalog: Path,
        columns: ColumnOptions,
        images_root: Path | None = None,
        progress: ProgressCallback | None = None,
        downloaded: Callable[[str], Path] | None = None,
    ) -> IngestReport:
        """Read CATALOG (streamed) and ingest every valid row; invalid rows are reported, never fatal.
        DOWNLOADED maps an image URL to its downloaded file (catalog.feed.DownloadedImages)."""
        mapping, rows = detect_columns(catalog, columns)
        if mapping is None:
            return IngestReport()  # an empty catalog is not an error: there is simply nothing to add
        resolver = ImageResolver(Path(catalog).resolve().parent, images_root, downloaded)
        return self.ingest_rows(rows, mapping, resolver, progress)

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
        """Embed and store validated products, batch by batch; rejections are added to REPORT.

        Four stages overlap: a read-ahead thread reads and hashes the next batches' image files; the decode pool
        decodes and preprocesses batch N+1 while the model embeds batch N on this thread; the writer thread writes
        batch N-1 meanwhile (one write at a time, in order; store reads stay on this thread, for other ids). Bounded:
        READ_AHEAD batches read, LOOKAHEAD decoding, one embedding and one writing."""
        started = time.perf_counter()
        report = report or IngestReport()
        in_flight: deque[_Pending] = deque()
        writer = SerialWriter("ingest-write")
        try:
            with ReadAhead(self._read_batches(drafts, report), READ_AHEAD, "ingest-read") as batches:
                for batch in batches:
                    in_flight.append(self._start(batch, report))
                    if len(in_flight) > LOOKAHEAD:
                        self._finish(in_flight.popleft(), report, progress, writer)
                while in_flight:
                    self._finish(in_flight.popleft(), report, progress, writer)
            writer.wait()
        finally:
            for pending in in_flight:  # interrupted: let the pool drop work nobody will collect
                pending.cancel()
            writer.close()
            self.stores.save()
            report.seconds = round(time.perf_counter() - started, 3)
            report.rejected.sort(key=lambda rejection: rejection.line)  # stages add them in any order
        report.duplicate_groups = len(self.stores.store.duplicate_groups())
        return report

    def _read_batches(self, drafts: Iterable[ProductDraft], report: IngestReport) -> Iterator[_Batch]:
        for batch in batched(drafts, self.batch_size):
            yield _Batch(len(batch), [p for p in (self._prepare(d, report) for d in batch) if p is not None])

    def _start(self, batch: _Batch, report: IngestReport) -> _Pending:
        """Decide what the batch needs (nothing, new metadata, new vectors) and start decoding what needs vectors."""
        prepared = batch.items
        stored = self.stores.store.hashes([p.product.id for p in prepared])
        changed = [item for item in prepared if stored.get(item.product.id, ("", ""))[0] != item.product.content_hash]
        report.unchanged += len(prepared) - len(changed)
        self._carry_learned(changed)
        kept = [i for i in changed if stored.get(i.product.id, ("", ""))[1] == i.product.embed_hash]
        kept_ids = {item.product.id for item in kept}
        to_embed = [item for item in changed if item.product.id not in kept_ids]
        return _Pending(batch.rows, set(stored), [ProductUpsert(i.product, None) for i in kept], self._submit(to_embed))

    def _finish(
        self, pending: _Pending, report: IngestReport, progress: ProgressCallback | None, writer: SerialWriter
    ) -> None:
        upserts = pending.upserts + self._embed(pending.decoding, report)
        writer.submit(lambda: self._write(upserts, pending, report, progress))

    def _write(
        self, upserts: list[ProductUpsert], pending: _Pending, report: IngestReport, progress: ProgressCallback | None
    ) -> None:
        """One store transaction for the batch, its near-duplicate links, and a save of the indexes now and then."""
        changes = self.stores.upsert(upserts)
        if "image" in changes.added:
            self._link_near_duplicates(*changes.added["image"])
        for upsert in upserts:
            if upsert.product.id in pending.stored_ids:
                report.updated += 1
            else:
                report.added += 1
        images = sum(len(u.product.images) for u in upserts if u.vectors is not None)
        report.images += images
        self._batches += 1
        if self._batches % self.save_every == 0:
            self.stores.save()
        if progress:
            progress(pending.rows, images)

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
                report.rejected.append(Rejection(row.line, row_id(row, mapping), str(exc)))
                continue
            if draft.id in first_line:
                reason = f"duplicate id {draft.id!r} (first seen on line {first_line[draft.id]}); row skipped"
                report.rejected.append(Rejection(row.line, draft.id, reason))
                continue
            first_line[draft.id] = row.line
            yield draft

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
        upserts = self._embed(self._submit([_Prepared(draft, blobs, product)]), report)
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
        unique: dict[str, tuple[ImageRef, bytes]] = {}  # sha256 -> (image, bytes); a file listed twice counts once
        for path, label, blob in zip(draft.image_paths, draft.image_labels, blobs, strict=True):
            sha = hashlib.sha256(blob).hexdigest()
            source = redact_url(label) if is_url(label) else None  # a feed URL stays the photo's source
            unique.setdefault(sha, (ImageRef(str(path.resolve()), sha, source_url=source), blob))
        images = [ref for ref, _blob in unique.values()]
        embed_hash = content_digest(draft.text, *unique)
        content_hash = content_digest(
            embed_hash, draft.name or "", json.dumps(draft.attributes, sort_keys=True, default=str), *draft.image_labels
        )
        product = Product(draft.id, draft.name, draft.text, draft.attributes, images, content_hash, embed_hash)
        return _Prepared(draft, [blob for _ref, blob in unique.values()], product)

    def _submit(self, items: list[_Prepared]) -> list[_Decoding]:
        """Start decoding ITEMS' images on the pool; the model is loaded here, only when something needs it."""
        if not items:
            return []
        embedder = self.embedder()
        spec = embedder.manifest.image.preprocess
        short_side = draft_side(spec) if self.runtime.jpeg_draft else None

        def decode(ref: ImageRef, blob: bytes) -> _Decoded:
            image = open_image(
                blob, label=ref.path, max_pixels=self.runtime.max_image_pixels, draft_short_side=short_side
            )
            # Here, in the pool, while the image is at hand; a box reduction to near the thumbnail's size first
            # makes it several times cheaper than resampling the whole photo.
            self.files.save_thumbnail(ref.sha256, image.reduce(max(1, max(image.size) // THUMBNAIL_SIDE)))
            if self.image_hook is not None:  # work on the full photo: local features for verification
                self.image_hook(ref.sha256, image)
            return _Decoded(embedder.pixels([image]), signature(image))

        return [
            _Decoding(
                item,
                [self._pool.submit(decode, r, b) for r, b in zip(item.product.images, item.image_bytes, strict=True)],
            )
            for item in items
        ]

    def _embed(self, decoding: list[_Decoding], report: IngestReport) -> list[ProductUpsert]:
        """Wait for the decoded images (a bad image rejects its row), then embed images and texts in batches."""
        ready: list[tuple[_Prepared, list[_Decoded]]] = []
        for entry in decoding:
            try:
                ready.append((entry.item, [future.result() for future in entry.futures]))
            except InvalidImageError as exc:
                item = entry.item
                report.rejected.append(Rejection(item.draft.line, item.draft.id, f"unusable image: {exc}"))
        if not ready:
            return []
        embedder = self.embedder()
        pixels = [image.pixels for _item, images in ready for image in images]
        image_vectors = embedder.embed_pixels(np.concatenate(pixels)) if pixels else np.zeros((0, 1), np.float32)
        texted = [item for item, _images in ready if item.product.text]
        text_vectors = embedder.embed_texts([item.product.text for item in texted]) if texted else None
        text_rows = {item.draft.id: row for row, item in enumerate(texted)}
        upserts, offset = [], 0
        for item, images in ready:
            item.product.images = [
                replace(ref, signature=image.signature) for ref, image in zip(item.product.images, images, strict=True)
            ]
            shas = [ref.sha256 for ref in item.product.images]
            vectors = [SpaceVectors("image", image_vectors[offset : offset + len(images)], shas)] if images else []
            offset += len(images)
            if text_vectors is not None and item.draft.id in text_rows:
                row = text_rows[item.draft.id]
                vectors.append(SpaceVectors("text", text_vectors[row : row + 1]))
            upserts.append(ProductUpsert(item.product, vectors))
        return upserts
