"""The files a catalog keeps in its folder, whatever its stores: thumbnails and local features (made at ingest),
uploaded product photos, query photos kept for a while so that a confirmed one can be learned, and the learned photos
themselves."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from pathlib import Path

from PIL import Image

THUMBNAIL_SIDE = 320


class CatalogFiles:
    """Files in the catalog's folder, named by the SHA-256 of the image they come from, written atomically."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def thumbnail_path(self, sha256: str) -> Path:
        return self.folder / "thumbnails" / f"{sha256}.jpg"

    def save_thumbnail(self, sha256: str, image: Image.Image) -> None:
        """A small JPEG of a product image for result grids (written once per distinct image)."""
        target = self.thumbnail_path(sha256)
        if target.exists():
            return
        small = image.copy()
        # Bilinear (antialiased when shrinking) rather than the default bicubic: as sharp at this size for a result
        # grid, and ~40% cheaper; every ingested image pays for it.
        small.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.BILINEAR)
        with _partial_file(target) as partial:
            small.save(partial, format="JPEG", quality=85)
        Path(partial.name).replace(target)

    def save_upload(self, data: bytes) -> Path:
        """An uploaded product photo, kept under its content hash (the same photo twice is one file)."""
        target = self.folder / "uploads" / f"{hashlib.sha256(data).hexdigest()}.img"
        if not target.exists():
            with _partial_file(target) as partial:
                partial.write(data)
            Path(partial.name).replace(target)
        return target

    def save_query_photo(self, data: bytes) -> str:
        """Keep a query photo (named by its SHA-256, which is returned) until feedback may ask to learn it."""
        sha = hashlib.sha256(data).hexdigest()
        target = self.query_photo(sha)
        if not target.exists():
            with _partial_file(target) as partial:
                partial.write(data)
            Path(partial.name).replace(target)
        return sha

    def query_photo(self, sha256: str) -> Path:
        return self.folder / "queries" / f"{sha256}.img"

    def forget_query_photos(self, older_than_s: float) -> int:
        """Delete kept query photos older than OLDER_THAN_S seconds; returns how many."""
        cutoff, removed = time.time() - older_than_s, 0
        for path in (self.folder / "queries").glob("*.img"):
            if path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def learn(self, sha256: str) -> Path | None:
        """Copy a kept query photo among the learned product photos; None when it is no longer kept."""
        source, target = self.query_photo(sha256), self.learned_photo(sha256)
        if not source.exists():
            return None
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        return target

    def learned_photo(self, sha256: str) -> Path:
        return self.folder / "learned" / f"{sha256}.img"

    def is_learned(self, path: str | Path) -> bool:
        """True for a product photo that was learned from feedback (not from the catalog's own rows)."""
        return Path(path).parent == self.folder / "learned"

    def forget_learned(self, sha256: str) -> None:
        self.learned_photo(sha256).unlink(missing_ok=True)

    def features_path(self, kind: str, sha256: str) -> Path:
        """Local features (keypoints) of one image, for geometric verification."""
        return self.folder / "features" / kind / sha256[:2] / f"{sha256}.bin"

    def save_features(self, kind: str, sha256: str, blob: bytes) -> None:
        target = self.features_path(kind, sha256)
        with _partial_file(target) as partial:
            partial.write(blob)
        Path(partial.name).replace(target)

    def load_features(self, kind: str, sha256: str) -> bytes | None:
        try:
            return self.features_path(kind, sha256).read_bytes()
        except FileNotFoundError:
            return None

    def forget_features(self, sha256: str) -> None:
        """Delete an image's local features of every kind (when no product shows the image any more)."""
        for kind in ("orb", "sift", "colour"):
            self.features_path(kind, sha256).unlink(missing_ok=True)

    def disk_usage(self) -> dict[str, int]:
        """Bytes of each file directly in the folder (the embedded stores' files)."""
        return {item.name: item.stat().st_size for item in sorted(self.folder.iterdir()) if item.is_file()}


def _partial_file(target: Path) -> tempfile._TemporaryFileWrapper[bytes]:
    """A uniquely named partial file beside TARGET: two writers of the same image never share one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.NamedTemporaryFile(dir=target.parent, suffix=".part", delete=False)
