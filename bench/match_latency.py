"""Median in-process latency of MatchService queries against an existing data dir (warm model, warm indexes).

    python bench/match_latency.py --data-dir prodmatch-data --photo ../shared/data/myntra-dev/images/36310.jpg \
        --text "boys blue denim shirt" --filter Colour=Blue
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from prodmatch.config import Settings
from prodmatch.matching.service import MatchService
from prodmatch.stores.datadir import DataDir
from prodmatch.stores.filters import parse_filters


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

    datadir = DataDir.open(Settings(data_dir=args.data_dir))
    service = MatchService(datadir)
    service.warm()
    photo_bytes = args.photo.read_bytes()
    photo = service.decode(photo_bytes)
    filters = parse_filters(args.filter)
    figures = {
        "products": datadir.store.count(),
        "decode_photo_ms": median_ms(lambda: service.decode(photo_bytes), args.repeats),
        "match_image_ms": median_ms(lambda: service.match_image(photo, 10), args.repeats),
        "match_image_filtered_ms": median_ms(lambda: service.match_image(photo, 10, filters), args.repeats),
        "match_text_ms": median_ms(lambda: service.match_text(args.text, 10), args.repeats),
        "match_text_filtered_ms": median_ms(lambda: service.match_text(args.text, 10, filters), args.repeats),
    }
    datadir.close()
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
