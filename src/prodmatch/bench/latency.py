"""Median in-process latency of the match use case against an existing catalog (warm model, warm indexes).

    python -m prodmatch.bench.latency --data-dir prodmatch-data --photo ../shared/data/myntra-dev/images/36310.jpg \
        --text "boys blue denim shirt" --filter Colour=Blue
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from prodmatch.application.querying import Matcher, MatchQuery
from prodmatch.composition import open_catalog
from prodmatch.config import Settings
from prodmatch.stores.filters import parse_filters
from prodmatch.stores.records import QueryLogEntry


class _NoLog:
    """The benchmark measures matching, not query-log writes."""

    def record(self, entry: QueryLogEntry) -> None:
        return None


def median_ms(run: Callable[[], object], repeats: int) -> float:
    run()
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        timings.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(timings), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--photo", type=Path, required=True)
    parser.add_argument("--text", required=True)
    parser.add_argument("--filter", action="append", default=[])
    parser.add_argument("--repeats", type=int, default=25)
    args = parser.parse_args()
    settings = Settings(data_dir=args.data_dir)
    print(f"measuring the {settings.location().describe()}")
    with open_catalog(settings) as catalog:
        catalog.warm()
        matcher = Matcher(catalog, _NoLog(), settings.serve.max_text_chars)
        photo, filters = args.photo.read_bytes(), parse_filters(args.filter)
        queries = {
            "match_image_ms": MatchQuery(image=photo),
            "match_image_filtered_ms": MatchQuery(image=photo, filters=filters),
            "match_text_ms": MatchQuery(text=args.text),
            "match_text_filtered_ms": MatchQuery(text=args.text, filters=filters),
        }
        figures: dict[str, float] = {"products": catalog.store.count()}
        figures["decode_photo_ms"] = median_ms(lambda: catalog.decode(photo), args.repeats)
        for name, query in queries.items():
            figures[name] = median_ms(functools.partial(matcher.match, query), args.repeats)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
