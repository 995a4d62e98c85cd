"""Content-addressed image files for catalog downloads: `dest/<sha[:2]>/<sha>.<ext>`, written atomically.

A body is hashed as it arrives (held in memory while small, see PartialImage) and written to a temp file
under `dest/.partial/`, which is fsynced and renamed to its final name (same file system, so the rename is
atomic), then the directory entry is fsynced. A process killed at any point leaves either no final file or a
complete one whose name is its hash; temp files it left are deleted by the next run, which holds an
exclusive lock on `dest` so it never deletes another run's files. The same image under two URLs is one
file: the second copy finds the name taken and is dropped.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

PARTIAL_DIR = ".partial"
LOCK_FILE = ".lock"
# Longest signature needed: RIFF....WEBP.
MAGIC_BYTES = 12
# Bodies up to this size are held in memory until committed (see PartialImage).
SPOOL_BYTES = 1024 * 1024
# Content types a server may label an image with; anything else (text/html, image/svg+xml...) is refused
# before the body is read. octet-stream and a missing type are left to the magic-byte check.
ALLOWED_CONTENT_TYPES = frozenset(
    {
        "image/jpeg",
        "image/jpg",
        "image/pjpeg",
        "image/png",
        "image/x-png",
        "image/webp",
        "image/gif",
        "application/octet-stream",
        "binary/octet-stream",
        "",
    }
)


class StoreLocked(Exception):
    """Another process is downloading into the same destination."""


@dataclass(frozen=True)
class StoredImage:
    """A committed image: its hash, its path relative to dest, its format and size."""

    sha256: str
    relpath: str
    ext: str
    size: int


def sniff_image(head: bytes) -> str | None:
    """The file extension for the image format `head` starts with (JPEG, PNG, WebP, GIF), else None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def content_type_allowed(header: str | None) -> bool:
    """Whether a Content-Type header value (parameters ignored) may carry an image."""
    media_type = (header or "").split(";", 1)[0].strip().lower()
    return media_type in ALLOWED_CONTENT_TYPES


class ImageStore:
    """The destination directory. Use as a context manager: it locks `dest` and clears leftover temp files."""

    def __init__(self, dest: Path, worker: str = "") -> None:
        """WORKER names one of several downloads writing into DEST at once (the shards of a Ray download): each
        has its own temp folder and lock, and finished files meet under their content hash."""
        self.dest = dest
        suffix = f"-{worker}" if worker else ""
        self._partial = dest / f"{PARTIAL_DIR}{suffix}"
        self._lock_file = dest / f"{LOCK_FILE}{suffix}"
        self._lock: IO[bytes] | None = None

    def __enter__(self) -> ImageStore:
        self._partial.mkdir(parents=True, exist_ok=True)
        lock = self._lock_file.open("ab")
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise StoreLocked(f"{self.dest} is in use by another download") from None
        self._lock = lock
        self.clean_partials()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._lock is not None:
            self._lock.close()  # closing releases the flock
            self._lock = None

    def clean_partials(self) -> int:
        """Delete temp files a killed run left behind; returns how many."""
        removed = 0
        for leftover in self._partial.glob("*.part"):
            leftover.unlink(missing_ok=True)
            removed += 1
        return removed

    def begin(self) -> PartialImage:
        """A new body to receive; its temp file in `.partial/` is created only when needed."""
        return PartialImage(self._partial / f"{uuid.uuid4().hex}.part")

    def path_of(self, relpath: str) -> Path:
        return self.dest / relpath

    def commit(self, partial: PartialImage, ext: str) -> StoredImage:
        """Make `partial` durable under its content name (blocking: fsyncs; run it in a thread)."""
        sha = partial.sha256
        relpath = f"{sha[:2]}/{sha}.{ext}"
        final = self.dest / relpath
        if final.exists():
            # Same bytes already stored (another URL, an earlier run): names are hashes, so keep the old one.
            partial.discard()
        else:
            partial.finish()
            new_dir = not final.parent.is_dir()
            final.parent.mkdir(exist_ok=True)
            os.replace(partial.path, final)
            _fsync_dir(final.parent)
            if new_dir:
                _fsync_dir(self.dest)
        return StoredImage(sha, relpath, ext, partial.size)


class PartialImage:
    """A body being received: hashed and counted as it arrives, kept in memory up to SPOOL_BYTES.

    Typical catalog images are far below SPOOL_BYTES, so their temp file is created, written, fsynced and
    renamed in one go by ImageStore.commit in a worker thread: no file-system call blocks the event loop
    (creating a file can take milliseconds on a busy or network disk). A larger body spills to its temp file
    (`spill`, also meant for a thread) and later chunks are appended there, so memory stays bounded by
    concurrency x SPOOL_BYTES.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = 0
        self.head = b""
        self._hash = hashlib.sha256()
        self._buffer = bytearray()
        self._file: IO[bytes] | None = None

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    @property
    def wants_spill(self) -> bool:
        return self._file is None and len(self._buffer) > SPOOL_BYTES

    def write(self, chunk: bytes) -> None:
        # Once spilled, plain buffered writes on the event loop: they only copy into the page cache.
        self._hash.update(chunk)
        self.size += len(chunk)
        if len(self.head) < MAGIC_BYTES:
            self.head = (self.head + chunk)[:MAGIC_BYTES]
        if self._file is None:
            self._buffer += chunk
        else:
            self._file.write(chunk)

    def spill(self) -> None:
        """Move the buffered bytes to the temp file (blocking: run it in a thread)."""
        if self._file is None:
            self._file = self.path.open("xb")
        self._file.write(self._buffer)
        self._buffer = bytearray()

    def finish(self) -> None:
        """Write everything to the temp file, fsync and close it (blocking)."""
        self.spill()
        assert self._file is not None
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None

    def discard(self) -> None:
        """Drop the body and delete its temp file if one was made (idempotent)."""
        self._buffer = bytearray()
        if self._file is not None:
            self._file.close()
            self._file = None
        self.path.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    """Persist a rename: the new directory entry is durable only once the directory itself is fsynced."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
