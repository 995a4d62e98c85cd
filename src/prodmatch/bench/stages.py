"""Where an in-process query's time goes: median milliseconds per stage (decode, preprocess, model, search,
decide) and the whole match over the model's part, for photo and text queries, in one run on one catalog.

    python -m prodmatch.bench.stages --data-dir prodmatch-data --photos ../shared/data/myntra-dev/images \
        --texts "boys blue denim shirt" "black leather watch" --repeats 3

The issue's targets are these ratios: a photo match <= 1.2x its model time, a text match <= 1.3x the text tower.
The query log is left out (the API writes it in the background); every photo and text is a distinct query.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from prodmatch.application.querying import STAGES, Matcher, MatchQuery, Timings
from prodmatch.composition import open_catalog
from prodmatch.config import Settings
from prodmatch.stores.records import QueryLogEntry

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
DEFAULT_TEXTS = [
    "boys blue denim shirt",
    "black leather watch for men",
    "women red running shoes",
    "white cotton t-shirt with print",
    "green backpack with laptop sleeve",
]


class _NoLog:
    def record(self, entry: QueryLogEntry) -> None:
        return None


def profile(matcher: Matcher, queries: list[MatchQuery], repeats: int, cpu: bool = False) -> dict[str, Any]:
    """Median ms per stage and of the whole match over QUERIES x REPEATS (after a warm-up). CPU: the process's
    CPU milliseconds (all threads, the model's included) instead of wall time: on a machine other work shares,
    CPU time barely moves while wall time swings several-fold."""
    clock = time.process_time if cpu else time.perf_counter
    for query in queries[:3]:
        matcher.match(query)
    per_stage: dict[str, list[float]] = {stage: [] for stage in STAGES}
    totals, ratios = [], []
    for _ in range(repeats):
        for query in queries:
            started = clock()
            answer = matcher.match(query, Timings(clock))
            total = (clock() - started) * 1000
            totals.append(total)
            ratios.append(total / answer.timings["model"])
            for stage, ms in answer.timings.items():
                per_stage[stage].append(ms)
    report: dict[str, Any] = {"queries": len(totals)}
    report |= {f"{stage}_ms": round(statistics.median(v), 3) for stage, v in per_stage.items() if v}
    report["match_ms"] = round(statistics.median(totals), 3)
    report["match_over_model"] = round(statistics.median(ratios), 3)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--photos", type=Path, required=True, help="a folder of query photos")
    parser.add_argument("--max-photos", type=int, default=40)
    parser.add_argument("--texts", nargs="*", default=DEFAULT_TEXTS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpu", action="store_true", help="CPU time of the process instead of wall time")
    args = parser.parse_args()
    settings = Settings(data_dir=args.data_dir)
    photos = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)[: args.max_photos]
    timing = (args.repeats, args.cpu)
    with open_catalog(settings) as catalog:
        catalog.warm()
        matcher = Matcher(catalog, _NoLog(), settings.serve.max_text_chars)
        figures = {
            "products": catalog.store.count(),
            "model": catalog.embedder().manifest.name,
            "clock": "process CPU time" if args.cpu else "wall time",
            "image": profile(matcher, [MatchQuery(image=p.read_bytes(), top_k=5) for p in photos], *timing),
            "text": profile(matcher, [MatchQuery(text=t, top_k=5) for t in args.texts], *timing),
        }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
