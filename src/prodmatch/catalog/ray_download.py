"""`prodmatch download CATALOG --engine ray`: the downloader run as Ray tasks, one shard of the URLs each.

URLs are split evenly by their key (not by host: a feed usually comes from one CDN, which would put everything in
one shard). Every shard writes into the same feed folder: finished files meet under their content hash (atomic
renames; the same image twice is one file), each shard has its own temp folder and lock (ImageStore's worker),
and all write one manifest (SQLite, a row per URL, committed as each URL finishes). So a rerun, sharded or not,
skips what any shard already settled, and a shard whose worker died is retried by Ray and resumes the same way.

Politeness holds across the cluster: each shard gets 1/N of the per-host bound (at least one). On a cluster the
feed folder must be storage every node sees at the same path (a shared volume); tasks read and write it directly.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import ray

from prodmatch.catalog.download import DownloadOptions, download_tally
from prodmatch.catalog.download_manifest import DownloadSummary, Manifest, SummaryBuilder
from prodmatch.catalog.feed import FeedFolder

MAX_RETRIES = 3


def shard_urls(urls: Sequence[str], shards: int) -> list[list[str]]:
    """The distinct URLs in SHARDS (at most one per URL) groups, each URL always in the same group for the same
    count, so a rerun's shard finds its own work settled."""
    distinct = list(dict.fromkeys(url.strip() for url in urls if url.strip()))
    count = max(1, min(shards, len(distinct)))
    groups: list[list[str]] = [[] for _ in range(count)]
    for url in distinct:
        groups[int.from_bytes(hashlib.blake2b(url.encode(), digest_size=8).digest(), "little") % count].append(url)
    return [group for group in groups if group]


def download_on_ray(
    urls: Sequence[str],
    feed: FeedFolder,
    options: DownloadOptions,
    shards: int,
) -> DownloadSummary:
    """Download URLS into FEED on Ray (already initialised: catalog.ray_engine.start_ray) in SHARDS tasks; the
    summary adds up every shard's, as each finishes."""
    groups = shard_urls(urls, shards)
    per_shard = replace(options, per_host=max(1, options.per_host // max(1, len(groups))))
    Manifest(feed.manifest).close()  # made once here, so the shards never race to create it
    task = ray.remote(_download_shard).options(max_retries=MAX_RETRIES, retry_exceptions=False)
    pending = [
        task.remote(group, str(feed.images), str(feed.manifest), per_shard, f"shard-{number}")
        for number, group in enumerate(groups)
    ]
    tally = SummaryBuilder()
    while pending:
        finished, pending = ray.wait(pending)
        for reference in finished:
            tally.merge(ray.get(reference))
    return tally.build()


def _download_shard(
    urls: list[str], images: str, manifest: str, options: DownloadOptions, worker: str
) -> SummaryBuilder:
    return asyncio.run(download_tally(urls, Path(images), Path(manifest), options, total=len(urls), worker=worker))
