"""Write a synthetic catalog of N products with generated photos, for load tests at catalog sizes the sample
data does not reach. Photos are drawn shapes on a white background (product-shot-like), all distinct.

    python -m prodmatch.bench.synthetic_catalog --products 10000 --out /tmp/catalog-10k
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

COLOURS = {
    "Red": (200, 40, 40),
    "Blue": (40, 70, 200),
    "Green": (40, 160, 70),
    "Yellow": (230, 200, 40),
    "Black": (30, 30, 30),
    "White": (235, 235, 235),
    "Pink": (230, 120, 170),
    "Grey": (130, 130, 130),
}
TYPES = ["Tshirts", "Shirts", "Jeans", "Shorts", "Dresses", "Jackets", "Sweaters", "Shoes"]


def photo(rng: np.random.Generator, colour: tuple[int, int, int]) -> Image.Image:
    image = Image.new("RGB", (420, 560), "white")
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 6))):
        box = sorted(rng.integers(20, 400, 2).tolist()), sorted(rng.integers(20, 540, 2).tolist())
        shade = tuple(int(np.clip(c + rng.integers(-40, 40), 0, 255)) for c in colour)
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((box[0][0], box[1][0], box[0][1] + 10, box[1][1] + 10), fill=shade)
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    (args.out / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    with open(args.out / "catalog.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "name", "Colour", "ProductType", "price", "image"])
        for number in range(args.products):
            colour, kind = rng.choice(list(COLOURS)), rng.choice(TYPES)
            name = f"{colour} {kind} style {number}"
            path = args.out / "images" / f"{number}.jpg"
            if not path.exists():
                photo(rng, COLOURS[colour]).save(path, quality=85)
            writer.writerow(
                [f"P{number:06d}", name, colour, kind, round(float(rng.uniform(5, 200)), 2), f"images/{number}.jpg"]
            )


if __name__ == "__main__":
    main()
