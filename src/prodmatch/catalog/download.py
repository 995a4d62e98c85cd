"""Download a catalog's images: bounded, retried, resumable, and safe against URLs that point inward (SSRF).

`download()` (or `download_tally()` in an event loop) fetches each distinct URL once into a content-addressed store
(download_store) and records one manifest row per URL (download_manifest), committed as the URL finishes. A
rerun skips URLs already settled, so a killed batch resumes where it stopped. Every request hop is vetted and
pinned to its vetted addresses first (download_safety). Nothing about one URL stops the batch: each outcome
is a manifest row; only problems with the batch itself (destination in use, disk errors) raise.

Concurrency: `concurrency` workers each fetch one URL at a time (the global bound); a per-host semaphore,
held per request hop (never across a redirect or a backoff sleep, so hops cannot deadlock), bounds each host.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sqlite3
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import httpx

from prodmatch.catalog.download_http import (
    FetchFailure,
    HostSlots,
    auth_header,
    check_response,
    parse_url,
    redirect_target,
    require_image,
    transport_failure,
)
from prodmatch.catalog.download_manifest import (
    DownloadError,
    DownloadSummary,
    Manifest,
    ManifestRecord,
    Status,
    SummaryBuilder,
)
from prodmatch.catalog.download_safety import (
    AddressPolicy,
    PinnedBackend,
    PinnedTransport,
    Refused,
    ResolveFailed,
    Resolver,
    Target,
    redact_url,
    system_resolver,
    url_key,
    vet_url,
)
from prodmatch.catalog.download_store import (
    MAGIC_BYTES,
    ImageStore,
    PartialImage,
    StoredImage,
    StoreLocked,
)

__all__ = [
    "DownloadError",
    "DownloadOptions",
    "DownloadSummary",
    "ManifestRecord",
    "Progress",
    "Status",
    "download",
    "download_tally",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DownloadOptions:
    """Limits and policy for one batch. Timeouts are seconds; `total_timeout` covers all tries of one URL."""

    concurrency: int = 32
    per_host: int = 4
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    total_timeout: float = 120.0
    max_attempts: int = 4
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    retry_after_max: float = 60.0
    max_redirects: int = 5
    max_bytes: int = 25 * 1024 * 1024
    # Non-public addresses that may nevertheless be fetched: CIDRs ("127.0.0.1/32") or host names.
    allow_hosts: tuple[str, ...] = ()
    # Also refetch URLs that failed permanently or were refused in an earlier run.
    retry_permanent: bool = False
    verify_tls: bool = True
    user_agent: str = "prodmatch-catalog-downloader/0.1"

    def __post_init__(self) -> None:
        counts, timeouts = ("concurrency", "per_host", "max_attempts", "max_bytes"), ("connect", "read", "total")
        positive = [*counts, *(f"{kind}_timeout" for kind in timeouts)]
        bad = [name for name in positive if getattr(self, name) <= 0]
        if bad or self.max_redirects < 0 or self.backoff_base < 0:
            raise ValueError(f"download options must be positive: {', '.join(bad) or 'max_redirects/backoff'}")


@dataclass(frozen=True)
class Progress:
    """Reported after each distinct URL: `fetched` is False when an earlier run had already settled it."""

    done: int
    total: int | None
    record: ManifestRecord
    fetched: bool


ProgressCallback = Callable[[Progress], None]


def download(
    urls: Iterable[str],
    dest: Path,
    manifest: Path,
    options: DownloadOptions | None = None,
    *,
    on_progress: ProgressCallback | None = None,
    resolver: Resolver | None = None,
) -> DownloadSummary:
    """Fetch every distinct URL not yet settled in `manifest`; images land in `dest/<sha[:2]>/<sha>.<ext>`.

    Settled means ok (and its file still present), or failed permanently / refused unless
    `options.retry_permanent`. `resolver` replaces getaddrinfo (tests). Raises DownloadError when `dest` is in
    use by another run or the manifest cannot be opened; every per-URL problem is a manifest row instead.
    """
    # A progress bar needs the number of distinct URLs; only known up front for a collection, not a stream.
    total = len({u.strip() for u in urls} - {""}) if isinstance(urls, Collection) else None
    tally = download_tally(urls, dest, manifest, options, on_progress=on_progress, resolver=resolver, total=total)
    return asyncio.run(tally).build()


async def download_tally(
    urls: Iterable[str],
    dest: Path,
    manifest: Path,
    options: DownloadOptions | None = None,
    *,
    on_progress: ProgressCallback | None = None,
    resolver: Resolver | None = None,
    total: int | None = None,
    worker: str = "",
) -> SummaryBuilder:
    """download()'s work in a running event loop, answering the unbuilt tally: the shards of one batch (WORKER
    names each, see ImageStore) add their tallies up into one summary."""
    opts = options or DownloadOptions()
    try:
        with ImageStore(dest, worker) as store, Manifest(manifest) as book:
            batch = _Batch(store, book, opts, resolver or system_resolver, on_progress, total)
            await batch.run(urls)
            return batch.summary
    except StoreLocked as exc:
        raise DownloadError(str(exc)) from exc


@dataclass
class _UrlState:
    """What is known about one URL across its tries, for its manifest row."""

    url: str
    attempts: int = 0
    http_status: int | None = None
    content_type: str | None = None
    final_url: str | None = None
    started: float = field(default_factory=time.monotonic)


class _Batch:
    """One call of download_tally: the workers, the shared transport and the summary."""

    def __init__(
        self,
        store: ImageStore,
        manifest: Manifest,
        options: DownloadOptions,
        resolver: Resolver,
        on_progress: ProgressCallback | None,
        total: int | None,
    ) -> None:
        self.store = store
        self.manifest = manifest
        self.options = options
        self.resolver = resolver
        self.on_progress = on_progress
        self.total = total
        self.summary = SummaryBuilder()
        self.policy = AddressPolicy.from_allow_hosts(options.allow_hosts)
        self.backend = PinnedBackend(self.policy, max_pins=4 * options.concurrency)
        limits = httpx.Limits(max_connections=options.concurrency, max_keepalive_connections=options.concurrency)
        self.transport = PinnedTransport(self.backend, verify=options.verify_tls, limits=limits)
        self.hosts = HostSlots(options.per_host)
        # 16-byte key prefixes of URLs seen in this batch: duplicates in a feed are fetched and counted once.
        self.seen: set[bytes] = set()
        self.rng = random.Random()
        self.timeouts = {
            "connect": options.connect_timeout,
            "read": options.read_timeout,
            "write": options.read_timeout,
            "pool": options.connect_timeout,
        }

    async def run(self, urls: Iterable[str]) -> None:
        pending = iter(urls)
        try:
            async with self.transport, asyncio.TaskGroup() as workers:
                for _ in range(self.options.concurrency):
                    workers.create_task(self._worker(pending))
        except ExceptionGroup as group:
            # A worker only dies on a batch-wide problem (disk full, manifest write failing) or a bug: report
            # the first cause plainly rather than as a group; the others are its echoes from sibling workers.
            cause = group.exceptions[0]
            if isinstance(cause, OSError | sqlite3.Error):
                raise DownloadError(f"download stopped: {cause}") from cause
            raise cause from group

    async def _worker(self, pending: Iterator[str]) -> None:
        # One iterator shared by all workers: next() never awaits, so no two workers get the same item.
        for raw in pending:
            url = raw.strip()
            if url:  # blank lines are not URLs
                await self._handle(url)

    async def _handle(self, url: str) -> None:
        key = url_key(url)
        prefix = bytes.fromhex(key)[:16]
        if prefix in self.seen:
            return
        self.seen.add(prefix)
        previous = self.manifest.get(key)
        if previous is not None and self._settled(previous):
            self._report(previous, fetched=False)
            return
        record = await self._fetch(url, key)
        self.manifest.put(record)
        log.debug("%s %s %s", record.status, record.url, record.error_kind or record.path)
        self._report(record, fetched=True)

    def _settled(self, record: ManifestRecord) -> bool:
        if record.status is Status.OK:
            # A file deleted since (by hand, or a power cut before the rename was durable) is fetched again.
            return record.path is not None and self.store.path_of(record.path).is_file()
        if record.status is Status.FAILED_TRANSIENT:
            return False
        return not self.options.retry_permanent

    def _report(self, record: ManifestRecord, *, fetched: bool) -> None:
        self.summary.add(record, fetched=fetched)
        if self.on_progress is not None:
            done = self.summary.fetched + self.summary.skipped
            self.on_progress(Progress(done, self.total, record, fetched))

    async def _fetch(self, url: str, key: str) -> ManifestRecord:
        state = _UrlState(url)
        deadline = asyncio.get_running_loop().time() + self.options.total_timeout
        try:
            async with asyncio.timeout_at(deadline):
                outcome = await self._with_retries(state, deadline)
        except TimeoutError:
            outcome = FetchFailure(
                Status.FAILED_TRANSIENT, "total_timeout", f"no complete response within {self.options.total_timeout:g}s"
            )
        return _record(key, state, outcome)

    async def _with_retries(self, state: _UrlState, deadline: float) -> StoredImage | FetchFailure:
        loop = asyncio.get_running_loop()
        while True:
            state.attempts += 1
            state.http_status = state.content_type = None  # the row reports the last try's response
            try:
                return await self._attempt(state)
            except FetchFailure as failure:
                if not failure.transient or state.attempts >= self.options.max_attempts:
                    return failure
                delay = backoff_delay(state.attempts, self.options, failure.retry_after, self.rng)
                if loop.time() + delay >= deadline:
                    return failure  # sleeping would only run into the URL's total timeout
                await asyncio.sleep(delay)

    async def _attempt(self, state: _UrlState) -> StoredImage:
        """One try: follow up to max_redirects redirects, vetting each hop, and store the image."""
        first = parse_url(state.url)
        current = first
        for _ in range(self.options.max_redirects + 1):
            state.final_url = str(current)
            target = await self._vet(current)
            async with self.hosts.hold(target.host):
                result = await self._exchange(current, auth_header(first, current), state)
            if isinstance(result, StoredImage):
                return result
            current = result
        raise FetchFailure(
            Status.FAILED_PERMANENT, "too_many_redirects", f"more than {self.options.max_redirects} redirects"
        )

    async def _vet(self, url: httpx.URL) -> Target:
        try:
            target = await vet_url(url, self.policy, self.resolver, self.options.connect_timeout)
        except Refused as exc:
            raise FetchFailure(Status.REFUSED, exc.kind, str(exc)) from None
        except ResolveFailed as exc:
            status = Status.FAILED_TRANSIENT if exc.transient else Status.FAILED_PERMANENT
            raise FetchFailure(status, "dns_error", str(exc)) from None
        self.backend.pin(target)
        return target

    async def _exchange(self, url: httpx.URL, auth: dict[str, str], state: _UrlState) -> StoredImage | httpx.URL:
        """One request: a redirect's next URL, or the stored image; anything else raises FetchFailure."""
        headers = {"User-Agent": self.options.user_agent, "Accept": "image/*", "Accept-Encoding": "identity", **auth}
        request = httpx.Request(
            "GET", url.copy_with(username=None, password=None), headers=headers, extensions={"timeout": self.timeouts}
        )
        try:
            response = await self.transport.handle_async_request(request)
        except httpx.HTTPError as exc:
            raise transport_failure(exc) from None
        try:
            state.http_status = response.status_code
            state.content_type = response.headers.get("content-type")
            redirect = redirect_target(url, response)
            if redirect is not None:
                return redirect
            check_response(response, self.options.max_bytes)
            return await self._receive(response)
        finally:
            # Closing a half-read body only drops the connection; an error doing so must not mask the outcome.
            with contextlib.suppress(httpx.HTTPError):
                await response.aclose()

    async def _receive(self, response: httpx.Response) -> StoredImage:
        """Receive the body under the size cap, check its magic bytes, commit it to the store."""
        partial = self.store.begin()
        handed_off = False
        try:
            ext = await self._stream(response, partial)
            # From here the commit thread owns the temp file; if this task is cancelled meanwhile the thread
            # still finishes (or fails) on its own and any leftover is cleaned by the next run. (Likewise a
            # spill thread cut off by the total timeout may leave a temp file behind for the next run.)
            handed_off = True
            return await asyncio.to_thread(self.store.commit, partial, ext)
        finally:
            if not handed_off:
                partial.discard()

    async def _stream(self, response: httpx.Response, partial: PartialImage) -> str:
        ext: str | None = None
        try:
            async for chunk in response.aiter_raw():
                if partial.size + len(chunk) > self.options.max_bytes:
                    raise FetchFailure(Status.REFUSED, "too_large", f"body exceeds {self.options.max_bytes} bytes")
                partial.write(chunk)
                if partial.wants_spill:
                    await asyncio.to_thread(partial.spill)
                if ext is None and len(partial.head) >= MAGIC_BYTES:
                    ext = require_image(partial.head)
        except httpx.HTTPError as exc:
            raise transport_failure(exc) from None
        return ext or require_image(partial.head)


def backoff_delay(attempt: int, options: DownloadOptions, retry_after: float | None, rng: random.Random) -> float:
    """Seconds before try `attempt + 1`: exponential with jitter, at least the (capped) Retry-After."""
    ceiling = min(options.backoff_max, options.backoff_base * 2.0 ** (attempt - 1))
    # "Equal jitter": half fixed, half random, so retries spread out yet never come back at once.
    delay = ceiling / 2 + rng.uniform(0, ceiling / 2)
    if retry_after is not None:
        delay = max(delay, min(retry_after, options.retry_after_max))
    return delay


def _record(key: str, state: _UrlState, outcome: StoredImage | FetchFailure) -> ManifestRecord:
    common = ManifestRecord(
        key=key,
        url=redact_url(state.url),
        status=Status.OK,
        attempts=state.attempts,
        finished_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
        latency_ms=round((time.monotonic() - state.started) * 1000, 1),
        http_status=state.http_status,
        content_type=state.content_type,
        final_url=redact_url(state.final_url) if state.final_url else None,
    )
    if isinstance(outcome, StoredImage):
        return replace(common, size_bytes=outcome.size, sha256=outcome.sha256, path=outcome.relpath)
    return replace(common, status=outcome.status, error_kind=outcome.kind, error=str(outcome))
