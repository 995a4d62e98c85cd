"""Multi-view photo folders (e.g. DeepFashion in-shop: several photos of one garment) as a catalog and real queries.

A regular expression finds the item id in each file name; the first photo of each item (sorted by name) is its
catalog photo, the other photos are queries of it (eval.real_photos). Items with one photo only stay in the catalog
as distractors.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from pathlib import Path

from prodmatch.errors import ProdmatchError

_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


def views_split(folder: Path, pattern: str, out_dir: Path) -> tuple[Path, Path]:
    """Write OUT_DIR/catalog.csv (id, name, image) and OUT_DIR/queries.csv (id, image) for the photos in FOLDER;
    image paths are absolute. PATTERN's first group (or whole match) is the item id."""
    items: dict[str, list[Path]] = defaultdict(list)
    for path in sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in _SUFFIXES):
        found = re.search(pattern, path.name)
        if found:
            items[found.group(1) if found.groups() else found.group(0)].append(path.resolve())
    if not items:
        raise ProdmatchError(f"no photo in {folder} has a name matching {pattern!r}")
    catalog, queries = out_dir / "catalog.csv", out_dir / "queries.csv"
    with catalog.open("w", newline="") as cat_file, queries.open("w", newline="") as query_file:
        cat_writer, query_writer = csv.writer(cat_file), csv.writer(query_file)
        cat_writer.writerow(["id", "name", "image"])
        query_writer.writerow(["id", "image"])
        for item, paths in sorted(items.items()):
            cat_writer.writerow([item, item, str(paths[0])])
            query_writer.writerows([item, str(path)] for path in paths[1:])
    return catalog, queries
