"""Keywords from result patterns: the attribute values shared by most of the top results.

"Most of the top 10 are blue kids' t-shirts" is what a reverse image search shows beside its results. Only
short text values count (type, colour, brand...), not names, URLs or numbers. A value is reported when at least
MIN_SHARE of the results hold it and it is clearly more common among them than in the whole catalog (by
MIN_LIFT): "Category: Apparel" says nothing in a catalog of clothes.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MIN_SHARE = 0.5
MIN_LIFT = 1.25
_CATEGORICAL = re.compile(r"^[\w&'/ -]{1,40}$")
_SKIP_KEYS = {"name", "images"}


@dataclass
class Keyword:
    key: str
    value: str
    share: float


def keywords(
    products: Sequence[dict[str, Any]],
    catalog_shares: dict[tuple[str, str], float] | None = None,
    min_share: float = MIN_SHARE,
) -> list[Keyword]:
    """Dominant attribute values among PRODUCTS (the top results), most shared first."""
    baseline = catalog_shares or {}
    if not products:
        return []
    counts: Counter[tuple[str, str]] = Counter()
    for product in products:
        for key, value in product.items():
            if key not in _SKIP_KEYS and isinstance(value, str) and _CATEGORICAL.match(value):
                counts[(key, value)] += 1
    found = [Keyword(key, value, round(count / len(products), 3)) for (key, value), count in counts.items()]
    telling = [k for k in found if k.share >= min_share and k.share >= MIN_LIFT * baseline.get((k.key, k.value), 0.0)]
    return sorted(telling, key=lambda k: (-k.share, k.key, k.value))
