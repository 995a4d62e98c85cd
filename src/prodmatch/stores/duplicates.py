"""Duplicate listings, decided the same way by every metadata store: which near pairs of image vectors become
links (the same photo saved as two files), and which products form groups (they list one photo, or linked
photos). A store supplies only its queries: the lookups passed in, and what it reads back for the groups."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

import numpy as np

Link = tuple[str, str]  # two image SHA-256s, smaller first


def same_photo(first: bytes | None, second: bytes | None, max_difference: float) -> bool:
    """Whether two thumbnail signatures differ by at most MAX_DIFFERENCE (mean absolute grey level)."""
    if not first or not second or len(first) != len(second):
        return False
    difference = np.abs(np.frombuffer(first, np.uint8).astype(np.int16) - np.frombuffer(second, np.uint8))
    return float(difference.mean()) <= max_difference


def near_duplicate_links(
    pairs: Sequence[tuple[int, int]],
    max_difference: float,
    image_shas: Callable[[list[int]], Mapping[int, str | None]],
    signatures: Callable[[list[str]], Mapping[str, bytes | None]],
) -> list[Link]:
    """The links PAIRS (by vector id) make: two different image files whose signatures are the same photo.

    image_shas(vector ids) -> the image each vector was computed from; signatures(shas) -> their signatures."""
    sha_of = image_shas(sorted({int(i) for pair in pairs for i in pair}))
    candidates = {
        (min(first, second), max(first, second))
        for a, b in pairs
        if (first := sha_of.get(int(a))) and (second := sha_of.get(int(b))) and first != second
    }
    if not candidates:
        return []
    signature_of = signatures(sorted({sha for link in candidates for sha in link}))
    return sorted((a, b) for a, b in candidates if same_photo(signature_of.get(a), signature_of.get(b), max_difference))


def duplicate_groups(owners: Mapping[str, Collection[str]], links: Iterable[Link]) -> list[list[str]]:
    """Sorted, disjoint groups of products listing the same photo.

    OWNERS: image sha -> the products listing it (at least every sha listed twice or linked); LINKS: near copies."""
    groups = [set(members) for members in owners.values()]
    groups += [set(owners.get(a, ())) | set(owners.get(b, ())) for a, b in links]
    return merge_groups(group for group in groups if len(group) > 1)


def merge_groups(groups: Iterable[set[str]]) -> list[list[str]]:
    """Union overlapping groups (A~B by one image, B~C by another) into sorted, disjoint groups."""
    merged: list[set[str]] = []
    for group in groups:
        overlapping = [m for m in merged if m & group]
        union = set(group).union(*overlapping)
        merged = [m for m in merged if not (m & group)] + [union]
    return sorted(sorted(group) for group in merged)
