"""Region search: a customer photo holds the product among clutter (a hand, a shelf, other products), so besides the
whole frame a few fixed crops are searched too; a product scores as its best region, and the region that gave the
top product its score is returned as the match's box.

Why fixed crops: on grocery-dev phone photos, 17 fixed crops were as good as saliency boxes (which cost a ViT pass)
and 4-7 centre/grid crops kept most of the gain (lite0 Recall@1 0.36 -> 0.43-0.45). All crops of a photo are embedded
in one model call. Off by default (settings.matching.regions): it multiplies a photo's embedding cost by the number
of crops, and geometric verification takes most of its gain on packaged goods.
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in 0..1 of the photo's width and height
WHOLE: Box = (0.0, 0.0, 1.0, 1.0)


def proposals(width: int, height: int) -> list[Box]:
    """The whole frame, centred squares of 0.7 and 0.5 of the short side, and a 2x2 grid of 0.6-side squares."""
    boxes = [WHOLE]
    short = min(width, height)
    for share in (0.7, 0.5):
        side_x, side_y = share * short / width, share * short / height
        boxes.append(((1 - side_x) / 2, (1 - side_y) / 2, (1 + side_x) / 2, (1 + side_y) / 2))
    side_x, side_y = 0.6 * short / width, 0.6 * short / height
    for left in (0.0, 1 - side_x):
        for top in (0.0, 1 - side_y):
            boxes.append((left, top, left + side_x, top + side_y))
    return [tuple(round(v, 4) for v in box) for box in boxes]  # type: ignore[misc]


def crops(image: Image.Image, boxes: Sequence[Box]) -> list[Image.Image]:
    width, height = image.size
    return [
        image.crop((round(x0 * width), round(y0 * height), round(x1 * width), round(y1 * height)))
        for x0, y0, x1, y1 in boxes
    ]


def best_regions(per_region: Sequence[dict[str, float]]) -> tuple[dict[str, float], dict[str, int]]:
    """Each product's best score over the regions, and which region (index) gave it."""
    scores: dict[str, float] = {}
    where: dict[str, int] = {}
    for region, found in enumerate(per_region):
        for pid, score in found.items():
            if score > scores.get(pid, float("-inf")):
                scores[pid], where[pid] = score, region
    return scores, where
