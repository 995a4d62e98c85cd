"""Geometric verification of an image query's top hits (Philbin et al. 2007): local keypoints of the query photo are
matched to each candidate's stored keypoints (Lowe's ratio test), a RANSAC homography keeps the matches one plane
explains, and the inlier count re-ranks the candidates and becomes evidence for the decision.

Why: the global vector of a degraded customer photo often ranks a look-alike first; a shared print, logo or pattern
seen under one perspective is strong evidence that only the same product gives. On hard altered myntra-dev photos
(held-out half) Recall@1 went from 0.81 to 0.97 and the decision's recall from 0.56 to 0.98 (docs/benchmarks.md).

Catalog keypoints are computed once per image at ingest (`LocalFeatures.compute`, called where thumbnails are made)
and stored in the catalog folder by image SHA-256, so they work with every metadata and vector backend. An image
without stored keypoints (a catalog ingested before this) gets them on its first verification, from its file or
thumbnail. Constants were chosen on half of myntra-dev (research in the verify branch's docs/benchmarks.md).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from cachetools import LRUCache
from PIL import Image

from prodmatch.config import MatchingSettings
from prodmatch.errors import InvalidImageError
from prodmatch.matching import colour
from prodmatch.models.preprocess import open_image
from prodmatch.stores.files import CatalogFiles
from prodmatch.stores.records import Product

# (keypoints, long side in px): ORB 300 @ 384 px stores ~10 KB per image and extracts in ~3 ms; SIFT is ~10x slower
# to extract and was no more accurate on myntra-dev, but finds more on small print (packaged groceries).
SHAPES = {"orb": (300, 384), "sift": (500, 512)}
WIDTHS = {"orb": 32, "sift": 128}
RATIO = 0.8  # Lowe's ratio test
REPROJECTION_PX = 8.0
RANSAC_ITERATIONS = 500
MIN_MATCHES = 6  # fewer ratio-test matches cannot give a trustworthy homography
# Chance matches give 4-12 RANSAC inliers (produce, plain garments); from MIN_INLIERS up they count, scaled up to
# CAP: score += BONUS * min(inliers, CAP) / CAP. A candidate with STRONG inliers is the same photo: nothing below
# it wins in practice, so verification stops there (median 1 candidate checked instead of depth).
MIN_INLIERS = 15
CAP = 30
BONUS = 0.4
STRONG = 25
KEYPOINTS_KEPT = 4096  # ~50 MB of ORB keypoints at most
COLOUR = "colour"  # the stored colour histograms' kind beside "orb" / "sift" (stores/files.py)


@dataclass(frozen=True)
class Keypoints:
    xy: np.ndarray  # (n, 2) float32, pixels of the resized grey image
    desc: np.ndarray  # (n, 32) uint8 for ORB, (n, 128) uint8 for SIFT
    kind: str
    # A query photo's colour histogram (matching/colour.py), when colour re-ranking is on: it rides with the
    # keypoints because both are taken from the decoded photo once and used on the same top products.
    colour: np.ndarray | None = None


def _cv2() -> Any:
    """OpenCV, imported when verification first runs (it is ~50 MB of native code; import takes ~0.1 s)."""
    import cv2

    cv2.setNumThreads(1)  # one query's few matches gain nothing from threads; parallel requests use the cores
    return cv2


def extract(image: Image.Image, kind: str = "orb") -> Keypoints:
    """Keypoints of IMAGE's grey version, resized so its long side is at most the kind's side."""
    cv2, (count, side) = _cv2(), SHAPES[kind]
    grey = image.convert("L")
    if max(grey.size) > side:
        factor = side / max(grey.size)
        size = (max(1, round(grey.width * factor)), max(1, round(grey.height * factor)))
        grey = grey.resize(size, Image.Resampling.BILINEAR)
    detector = (
        cv2.ORB_create(nfeatures=count, scaleFactor=1.2, nlevels=8, fastThreshold=10)
        if kind == "orb"
        else cv2.SIFT_create(nfeatures=count)
    )
    points, desc = detector.detectAndCompute(np.asarray(grey), None)
    if desc is None or not points:
        return Keypoints(np.zeros((0, 2), np.float32), np.zeros((0, WIDTHS[kind]), np.uint8), kind)
    desc = np.clip(np.rint(desc), 0, 255) if kind == "sift" else desc  # SIFT values are small and < 256 already
    return Keypoints(np.array([p.pt for p in points], np.float32), desc.astype(np.uint8), kind)


def pack(keypoints: Keypoints) -> bytes:
    """Storage: count (uint32) | xy float16 (count x 2) | descriptors uint8."""
    count = np.uint32(len(keypoints.xy)).tobytes()
    return count + keypoints.xy.astype(np.float16).tobytes() + keypoints.desc.tobytes()


def unpack(blob: bytes, kind: str) -> Keypoints:
    count = int(np.frombuffer(blob[:4], np.uint32)[0])
    xy = np.frombuffer(blob[4 : 4 + 4 * count], np.float16).reshape(count, 2).astype(np.float32)
    desc = np.frombuffer(blob[4 + 4 * count :], np.uint8).reshape(count, WIDTHS[kind])
    return Keypoints(xy, desc, kind)


def inliers(query: Keypoints, candidate: Keypoints) -> int:
    """Ratio-test matches consistent with one RANSAC homography (0 when too few matches)."""
    if len(query.xy) < 2 or len(candidate.xy) < 2:
        return 0
    distances, nearest = two_nearest(query, candidate)
    good = (nearest[:, 1] >= 0) & (distances[:, 0] < RATIO * distances[:, 1])  # in query order, as RANSAC samples
    if int(good.sum()) < MIN_MATCHES:
        return 0
    source, target, cv2 = query.xy[good], candidate.xy[nearest[good, 0]], _cv2()
    _, mask = cv2.findHomography(
        source, target, cv2.RANSAC, REPROJECTION_PX, maxIters=RANSAC_ITERATIONS, confidence=0.99
    )
    return int(mask.sum()) if mask is not None else 0


def two_nearest(query: Keypoints, candidate: Keypoints) -> tuple[np.ndarray, np.ndarray]:
    """Each query descriptor's two nearest candidate descriptors: distances and indices, (n, 2) each (-1: none).

    ORB: FAISS's binary flat index, the same exhaustive Hamming search as OpenCV's BFMatcher (same distances, same
    neighbours) at about a third of its CPU, which is most of what verifying a candidate costs."""
    if query.kind == "orb":
        index = faiss.IndexBinaryFlat(8 * WIDTHS["orb"])
        index.add(np.ascontiguousarray(candidate.desc))
        distances, nearest = index.search(np.ascontiguousarray(query.desc), 2)
        return distances.astype(np.float32), nearest
    cv2 = _cv2()
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(query.desc.astype(np.float32), candidate.desc.astype(np.float32), k=2)
    distances = np.full((len(pairs), 2), np.inf, np.float32)
    nearest = np.full((len(pairs), 2), -1, np.int64)
    for row, pair in enumerate(pairs):
        for column, match in enumerate(pair[:2]):
            distances[row, column], nearest[row, column] = match.distance, match.trainIdx
    return distances, nearest


def bonus(count: int) -> float:
    """What COUNT inliers add to a candidate's cosine score."""
    return BONUS * min(count, CAP) / CAP if count >= MIN_INLIERS else 0.0


def fuse(scores: dict[str, float], counts: dict[str, int]) -> dict[str, float]:
    """SCORES with each verified product's inlier bonus added."""
    return {pid: score + bonus(counts.get(pid, 0)) for pid, score in scores.items()}


ProductsOf = Callable[[list[str]], dict[str, Product]]


class LocalFeatures:
    """Catalog images' keypoints, stored per image SHA-256 in the catalog folder, and verification against them."""

    def __init__(self, files: CatalogFiles, settings: MatchingSettings) -> None:
        self.files = files
        self.kind = settings.verify_features
        self.depth = settings.verify_depth
        # The popular candidates come back query after query: their unpacked keypoints stay in memory (~12 KB each).
        self._kept: LRUCache[str, Keypoints] = LRUCache(KEYPOINTS_KEPT)
        self._lock = threading.Lock()
        self.colour_weights = (settings.colour_weight, settings.learned_colour_weight)  # catalog, learned photos

    @property
    def enabled(self) -> bool:
        return self.depth > 0

    def compute(self, sha256: str, image: Image.Image) -> None:
        """Store the keypoints of a catalog image (the ingest hook; once per distinct image)."""
        if self.enabled and self.files.load_features(self.kind, sha256) is None:
            self.files.save_features(self.kind, sha256, pack(extract(image, self.kind)))
        if self.colours_on and self.files.load_features(COLOUR, sha256) is None:
            self.files.save_features(COLOUR, sha256, colour.pack(colour.histogram(image, drop_white=True)))

    def of_query(self, image: Image.Image) -> Keypoints:
        found = extract(image, self.kind)
        if not self.colours_on:
            return found
        return Keypoints(found.xy, found.desc, found.kind, colour.histogram(image, drop_white=True))

    @property
    def colours_on(self) -> bool:
        return max(self.colour_weights) > 0

    def colours(
        self, query: Keypoints, ranked: Sequence[str], products: ProductsOf, skip_sha: str | None = None
    ) -> dict[str, float]:
        """What colour adds to each of RANKED: the best over its images (SKIP_SHA left out) of the image kind's
        weight x the colour similarity (Bhattacharyya, 0..1) of the image to the query photo."""
        if query.colour is None:
            return {}
        found = products(list(ranked))
        terms: dict[str, float] = {}
        for pid in ranked:
            images = [ref for ref in found[pid].images if ref.sha256 != skip_sha] if pid in found else []
            weighted = (
                (self.colour_weights[self.files.is_learned(ref.path)], self._colour_of(ref.sha256, ref.path))
                for ref in images
            )
            terms[pid] = max(
                (weight * float(hist @ query.colour) for weight, hist in weighted if hist is not None), default=0.0
            )
        return terms

    def _colour_of(self, sha256: str, path: str) -> np.ndarray | None:
        """A catalog image's stored colour histogram, computed now from its file (or thumbnail) when missing."""
        blob = self.files.load_features(COLOUR, sha256)
        if blob is not None:
            return colour.unpack(blob)
        for source in (Path(path), self.files.thumbnail_path(sha256)):
            if source.is_file():
                try:
                    hist = colour.histogram(open_image(source, draft_short_side=256), drop_white=True)
                except InvalidImageError:
                    continue
                self.files.save_features(COLOUR, sha256, colour.pack(hist))
                return hist
        return None

    def of_image(self, sha256: str, path: str) -> Keypoints | None:
        """A catalog image's stored keypoints, computed now from its file (or thumbnail) when missing."""
        with self._lock:
            kept = self._kept.get(sha256)
        if kept is not None:
            return kept
        blob = self.files.load_features(self.kind, sha256)
        if blob is not None:
            with self._lock:  # content-addressed: an image's keypoints never change, nothing to invalidate
                found = self._kept[sha256] = unpack(blob, self.kind)
            return found
        for source in (Path(path), self.files.thumbnail_path(sha256)):
            if source.is_file():
                try:
                    image = open_image(source, draft_short_side=SHAPES[self.kind][1])
                except InvalidImageError:
                    continue
                self.compute(sha256, image)
                return unpack(self.files.load_features(self.kind, sha256) or b"\0\0\0\0", self.kind)
        return None

    def verify(
        self,
        query: Keypoints,
        ranked: Sequence[str],
        products: ProductsOf,
        early_stop: bool = True,
        skip_sha: str | None = None,
    ) -> dict[str, int]:
        """Inliers of the first `depth` RANKED products (best image each), checked in rank order; with EARLY_STOP
        it stops at the first product with STRONG inliers. SKIP_SHA leaves out one image (a learned query photo)."""
        candidates = list(ranked[: self.depth])
        found = products(candidates)
        counts: dict[str, int] = {}
        for pid in candidates:
            images = [ref for ref in found[pid].images if ref.sha256 != skip_sha] if pid in found else []
            stored = (self.of_image(ref.sha256, ref.path) for ref in images)
            counts[pid] = max((inliers(query, kp) for kp in stored if kp is not None), default=0)
            if early_stop and counts[pid] >= STRONG:
                break
        return counts
