"""Keywords from result patterns: the attribute values shared by most of the top results.

"Most of the top 10 are blue kids' t-shirts" is what a reverse image search shows beside its results. Only
short text values count (type, colour, brand...), not names, URLs or numbers, and a value must be held by at
least MIN_SHARE of the results to be reported.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MIN_SHARE = 0.5
_CATEGORICAL = re.compile(r"^[\w&'/ -]{1,40}$")
_SKIP_KEYS = {"name", "images"}


@dataclass
class Keyword:
    key: str
    value: str
    share: float


def keywords(products: Sequence[dict[str, Any]], min_share: float = MIN_SHARE) -> list[Keyword]:
    """Dominant attribute values among PRODUCTS (the top results), most shared first."""
    if not products:
        return []
    counts: Counter[tuple[str, str]] = Counter()
    for product in products:
        for key, value in product.items():
            if key not in _SKIP_KEYS and isinstance(value, str) and _CATEGORICAL.match(value):
                counts[(key, value)] += 1
    found = [Keyword(key, value, round(count / len(products), 3)) for (key, value), count in counts.items()]
    return sorted((k for k in found if k.share >= min_share), key=lambda k: (-k.share, k.key, k.value))
