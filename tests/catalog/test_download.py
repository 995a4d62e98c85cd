"""Catalog image downloads against a misbehaving server on 127.0.0.1, with every other connection forbidden.

Each test runs under `network_guard`: a connection attempt (or DNS lookup) for anything but 127.0.0.0/8 and ::1
is refused and fails the test, so a hole in the SSRF defence shows up as a failure, never as traffic.
Names are resolved by an injected fake resolver; refusals are checked without connecting anywhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

import prodmatch
from prodmatch.catalog.download import (
    DownloadError,
    DownloadOptions,
    DownloadSummary,
    Progress,
    Status,
    backoff_delay,
    download,
)
from prodmatch.catalog.download_http import parse_retry_after
from prodmatch.catalog.download_manifest import Manifest, ManifestRecord, percentile
from prodmatch.catalog.download_safety import AddressPolicy, blocked_reason, redact_url, url_key
from prodmatch.catalog.download_store import PARTIAL_DIR, SPOOL_BYTES, ImageStore, sniff_image
from tests.catalog.misbehaving_server import GIF, JPEG, PNG, WEBP, MisbehavingServer, large_png, network_guard

ALLOW_TEST_SERVER = ("127.0.0.1/32",)


class FakeResolver:
    """Answers from a table; a list of answers is served in turn (the last one repeats). Unknown: NXDOMAIN."""

    def __init__(self, table: dict[str, list[list[str]]]) -> None:
        self.table = table
        self.calls: Counter[str] = Counter()

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls[host] += 1
        answers = self.table.get(host)
        if answers is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return answers[min(self.calls[host], len(answers)) - 1]


def fake_resolver() -> FakeResolver:
    return FakeResolver(
        {
            "images.test": [["127.0.0.1"]],
            "private.test": [["10.1.2.3"]],
            "metadata.test": [["169.254.169.254"]],
            "mixed.test": [["127.0.0.1", "10.0.0.7"]],
            "v6private.test": [["fd00::1"]],
            "mapped.test": [["::ffff:192.168.1.1"]],
            "flip.test": [["127.0.0.1"], ["10.0.0.1"]],  # DNS rebinding: public-looking first, private after
        }
    )


@pytest.fixture
def guard() -> Iterator[list[str]]:
    with network_guard() as violations:
        yield violations
    if violations:
        pytest.fail(f"connections outside 127.0.0.0/8 and ::1 were attempted: {violations}")


@pytest.fixture
def server(guard: list[str]) -> Iterator[MisbehavingServer]:
    with MisbehavingServer() as srv:
        yield srv


@pytest.fixture
def resolver() -> FakeResolver:
    return fake_resolver()


def options(**overrides: Any) -> DownloadOptions:
    """Fast settings for tests: short timeouts and backoff, only the test server allowed."""
    settings: dict[str, Any] = {
        "allow_hosts": ALLOW_TEST_SERVER,
        "concurrency": 8,
        "per_host": 8,
        "connect_timeout": 2.0,
        "read_timeout": 0.5,
        "total_timeout": 5.0,
        "max_attempts": 3,
        "backoff_base": 0.01,
        "backoff_max": 0.05,
        "retry_after_max": 2.0,
        "max_bytes": 200_000,
    }
    settings.update(overrides)
    return DownloadOptions(**settings)


def fetch(
    urls: Sequence[str], tmp_path: Path, resolver: FakeResolver | None = None, **overrides: Any
) -> tuple[DownloadSummary, dict[str, ManifestRecord]]:
    summary = download(
        urls, tmp_path / "images", tmp_path / "manifest.db", options(**overrides), resolver=resolver or fake_resolver()
    )
    return summary, manifest_rows(tmp_path / "manifest.db", urls)


def manifest_rows(path: Path, urls: Sequence[str]) -> dict[str, ManifestRecord]:
    """The manifest rows of `urls`, by URL (rows are keyed by the URL's hash)."""
    with Manifest(path) as manifest:
        found = {url: manifest.get(url_key(url)) for url in urls}
    return {url: record for url, record in found.items() if record is not None}


def assert_store_consistent(dest: Path, manifest: Path, *, complete: bool = True) -> None:
    """Every stored file is whole (its name is its hash) and every ok row points at one.

    complete: also no temp files left and no file without an ok row (true after any run that finished).
    """
    files = {p.relative_to(dest).as_posix(): p for p in dest.glob("??/*") if p.is_file()}
    for relpath, path in files.items():
        data = path.read_bytes()
        assert path.stem == hashlib.sha256(data).hexdigest(), f"{relpath} is not whole"
        assert path.suffix == "." + (sniff_image(data) or "?")
    with Manifest(manifest) as book:
        ok = {r.path: r for r in book.records() if r.status is Status.OK and r.path is not None}
    for relpath, record in ok.items():
        assert relpath in files, f"ok row without its file: {relpath}"
        assert record.sha256 is not None and relpath.startswith(f"{record.sha256[:2]}/{record.sha256}.")
    if complete:
        assert set(files) == set(ok), "files without an ok row"
        assert list((dest / PARTIAL_DIR).iterdir()) == [], "temp files left behind"


# --- fetching: the happy paths -------------------------------------------------------------------------------


def test_images_are_stored_by_content_hash(server: MisbehavingServer, tmp_path: Path) -> None:
    cases = {
        "/ok.jpg": (JPEG, "jpg"),
        "/ok.png": (PNG, "png"),
        "/ok.webp": (WEBP, "webp"),
        "/ok.gif": (GIF, "gif"),
        "/octet.png": (PNG, "png"),
    }
    urls = [server.url(path) for path in cases]
    summary, rows = fetch(urls, tmp_path)
    assert summary.by_status["ok"] == len(cases) and summary.success_ratio == 1.0
    for path, (body, ext) in cases.items():
        row = rows[server.url(path)]
        sha = hashlib.sha256(body).hexdigest()
        assert (row.status, row.http_status, row.sha256, row.size_bytes, row.attempts) == (
            Status.OK,
            200,
            sha,
            len(body),
            1,
        )
        assert row.path == f"{sha[:2]}/{sha}.{ext}"
        assert (tmp_path / "images" / row.path).read_bytes() == body
    assert summary.downloaded_bytes == sum(len(b) for b, _ in cases.values())
    assert summary.latency_p50_ms is not None and summary.latency_p95_ms is not None
    assert_store_consistent(tmp_path / "images", tmp_path / "manifest.db")


def test_a_large_image_is_spooled_to_disk_and_stored(server: MisbehavingServer, tmp_path: Path) -> None:
    url = server.url("/large.png?n=7")
    _, rows = fetch([url], tmp_path, max_bytes=4_000_000)
    body = large_png(7)
    assert len(body) > SPOOL_BYTES and rows[url].sha256 == hashlib.sha256(body).hexdigest()
    assert (tmp_path / "images" / str(rows[url].path)).read_bytes() == body
    assert_store_consistent(tmp_path / "images", tmp_path / "manifest.db")


def test_same_image_under_two_urls_is_one_file(server: MisbehavingServer, tmp_path: Path) -> None:
    urls = [server.url("/ok.jpg"), server.url("/copy.jpg"), server.url("/ok.jpg")]  # and a duplicate line
    summary, rows = fetch(urls, tmp_path)
    assert summary.total == 2 and summary.by_status["ok"] == 2
    assert rows[urls[0]].path == rows[urls[1]].path
    assert len(list((tmp_path / "images").glob("??/*"))) == 1
    assert server.hits("/ok.jpg") == 1
    assert_store_consistent(tmp_path / "images", tmp_path / "manifest.db")


def test_redirect_chain_is_followed(server: MisbehavingServer, tmp_path: Path) -> None:
    url = server.url("/chain?n=3")
    _, rows = fetch([url], tmp_path)
    assert rows[url].status is Status.OK and rows[url].final_url == server.url("/ok.png")


def test_names_connect_to_the_vetted_address_with_their_own_host_header(
    server: MisbehavingServer, tmp_path: Path, resolver: FakeResolver
) -> None:
    url = server.url("/ok.jpg", host="images.test")
    _, rows = fetch([url], tmp_path, resolver)
    assert rows[url].status is Status.OK
    assert server.state.requests[-1].headers["host"] == f"images.test:{server.port}"
    assert resolver.calls["images.test"] == 1


def test_progress_is_reported_per_url(server: MisbehavingServer, tmp_path: Path) -> None:
    seen: list[Progress] = []
    urls = [server.url("/ok.jpg"), server.url("/missing.jpg"), f"  {server.url('/ok.jpg')}\n", ""]
    download(urls, tmp_path / "d", tmp_path / "m.db", options(), on_progress=seen.append)
    assert sorted(p.done for p in seen) == [1, 2] and {p.total for p in seen} == {2}
    assert {p.record.status for p in seen} == {Status.OK, Status.FAILED_PERMANENT}


# --- failures, retries, limits -------------------------------------------------------------------------------


def test_404_is_a_permanent_failure_without_retry(server: MisbehavingServer, tmp_path: Path) -> None:
    url = server.url("/missing.jpg")
    summary, rows = fetch([url], tmp_path)
    row = rows[url]
    assert (row.status, row.http_status, row.error_kind, row.attempts) == (Status.FAILED_PERMANENT, 404, "http_404", 1)
    assert summary.by_error_kind == {"http_404": 1} and summary.success_ratio == 0.0


def test_500_then_200_is_retried(server: MisbehavingServer, tmp_path: Path) -> None:
    url = server.url("/flaky.png")
    _, rows = fetch([url], tmp_path)
    assert (rows[url].status, rows[url].attempts, rows[url].http_status) == (Status.OK, 2, 200)


def test_429_retry_after_seconds_is_honoured(server: MisbehavingServer, tmp_path: Path) -> None:
    url = server.url("/busy.gif?after=1")
    started = time.monotonic()
    _, rows = fetch([url], tmp_path)
    assert rows[url].status is Status.OK and rows[url].attempts == 2
    assert time.monotonic() - started >= 1.0


def test_429_retry_after_http_date_is_honoured(server: MisbehavingServer, tmp_path: Path) -> None:
    url = server.url("/busy.gif?date=2")  # an HTTP-date 2 s ahead (whole seconds: between 1 and 2 s of waiting)
    started = time.monotonic()
    _, rows = fetch([url], tmp_path)
    assert rows[url].status is Status.OK and time.monotonic() - started >= 0.9


def test_429_retry_after_is_capped(server: MisbehavingServer, tmp_path: Path) -> None:
    url = server.url("/busy.gif?after=3600")
    started = time.monotonic()
    _, rows = fetch([url], tmp_path, retry_after_max=0.5)
    assert rows[url].status is Status.OK and 0.5 <= time.monotonic() - started < 3.0


def test_retry_after_longer_than_the_total_timeout_gives_up_early(server: MisbehavingServer, tmp_path: Path) -> None:
    url = server.url("/busy.gif?after=30")
    started = time.monotonic()
    _, rows = fetch([url], tmp_path, retry_after_max=60.0, total_timeout=5.0)
    assert (rows[url].status, rows[url].error_kind, rows[url].attempts) == (Status.FAILED_TRANSIENT, "http_429", 1)
    assert time.monotonic() - started < 2.0


def test_stalled_body_hits_the_read_timeout(server: MisbehavingServer, tmp_path: Path) -> None:
    url = server.url("/drip.jpg")
    _, rows = fetch([url], tmp_path, read_timeout=0.3, max_attempts=2)
    assert (rows[url].status, rows[url].error_kind, rows[url].attempts) == (Status.FAILED_TRANSIENT, "read_timeout", 2)
    assert_store_consistent(tmp_path / "images", tmp_path / "manifest.db")


def test_trickling_body_hits_the_total_timeout(server: MisbehavingServer, tmp_path: Path) -> None:
    url = server.url("/trickle.jpg")
    started = time.monotonic()
    _, rows = fetch([url], tmp_path, read_timeout=1.0, total_timeout=1.0)
    assert (rows[url].status, rows[url].error_kind) == (Status.FAILED_TRANSIENT, "total_timeout")
    assert time.monotonic() - started < 3.0
    assert_store_consistent(tmp_path / "images", tmp_path / "manifest.db")


def test_connection_reset_mid_body_is_transient(server: MisbehavingServer, tmp_path: Path) -> None:
    url = server.url("/reset.jpg")
    _, rows = fetch([url], tmp_path, max_attempts=2)
    assert (rows[url].status, rows[url].error_kind, rows[url].attempts) == (
        Status.FAILED_TRANSIENT,
        "connection_lost",
        2,
    )
    assert_store_consistent(tmp_path / "images", tmp_path / "manifest.db")


def test_connection_refused_is_transient(guard: list[str], tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x.jpg"
    _, rows = fetch([url], tmp_path, max_attempts=2)
    assert (rows[url].status, rows[url].error_kind) == (Status.FAILED_TRANSIENT, "connect_error")


@pytest.mark.parametrize("path", ["/big.jpg", "/big-declared.jpg"])
def test_body_over_the_cap_is_refused(server: MisbehavingServer, tmp_path: Path, path: str) -> None:
    url = server.url(path)
    _, rows = fetch([url], tmp_path, max_bytes=100_000)
    assert (rows[url].status, rows[url].error_kind) == (Status.REFUSED, "too_large")
    assert_store_consistent(tmp_path / "images", tmp_path / "manifest.db")


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/html-as-jpeg.jpg", "not_an_image"),
        ("/empty.jpg", "not_an_image"),
        ("/page.html", "bad_content_type"),
        ("/svg", "bad_content_type"),
    ],
)
def test_non_images_are_refused(server: MisbehavingServer, tmp_path: Path, path: str, kind: str) -> None:
    url = server.url(path)
    _, rows = fetch([url], tmp_path)
    assert (rows[url].status, rows[url].error_kind, rows[url].attempts) == (Status.REFUSED, kind, 1)
    assert_store_consistent(tmp_path / "images", tmp_path / "manifest.db")


def test_redirect_loop_is_a_permanent_failure(server: MisbehavingServer, tmp_path: Path) -> None:
    url = server.url("/loop")
    _, rows = fetch([url], tmp_path, max_redirects=5)
    assert (rows[url].status, rows[url].error_kind) == (Status.FAILED_PERMANENT, "too_many_redirects")
    assert server.hits("/loop") == 6  # the first request and 5 redirects, then it stops


def test_per_host_concurrency_is_bounded(server: MisbehavingServer, tmp_path: Path) -> None:
    urls = [server.url(f"/slow.jpg?i={i}") for i in range(6)]
    summary, _ = fetch(urls, tmp_path, concurrency=8, per_host=2)
    assert summary.by_status["ok"] == 6 and server.state.max_in_flight == 2


def test_global_concurrency_is_bounded(server: MisbehavingServer, tmp_path: Path) -> None:
    urls = [server.url(f"/slow.jpg?i={i}") for i in range(6)]
    summary, _ = fetch(urls, tmp_path, concurrency=3, per_host=8)
    assert summary.by_status["ok"] == 6 and server.state.max_in_flight == 3


# --- SSRF: refusals never connect ------------------------------------------------------------------------------

BLOCKED_TARGETS = [
    "http://10.0.0.1/x.jpg",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://[fd00::1]/x.jpg",
    "http://[::ffff:10.0.0.1]/x.jpg",
    "http://127.0.0.2/x.jpg",  # loopback, but outside the allowed 127.0.0.1/32
    "http://0.0.0.0/x.jpg",
    "http://0x7f.1/x.jpg",
    "http://2130706433/x.jpg",
    "http://private.test/x.jpg",
    "http://metadata.test/computeMetadata/v1/",
    "http://mixed.test/x.jpg",  # one loopback (allowed) and one private address: refused
    "http://v6private.test/x.jpg",
    "http://mapped.test/x.jpg",
]


@pytest.mark.parametrize("target", BLOCKED_TARGETS)
def test_blocked_addresses_are_refused_directly(guard: list[str], tmp_path: Path, target: str) -> None:
    _, rows = fetch([target], tmp_path)
    assert (rows[target].status, rows[target].error_kind) == (Status.REFUSED, "blocked_address")
    assert rows[target].http_status is None


@pytest.mark.parametrize("target", BLOCKED_TARGETS)
def test_blocked_addresses_are_refused_after_a_redirect(server: MisbehavingServer, tmp_path: Path, target: str) -> None:
    url = server.url(f"/redirect?status=307&to={target}")
    _, rows = fetch([url], tmp_path)
    row = rows[url]
    # the row shows the last response (the redirect) and the hop that was refused
    assert (row.status, row.error_kind, row.http_status) == (Status.REFUSED, "blocked_address", 307)
    assert row.final_url == redact_url(target)
    assert server.hits(f"/redirect?status=307&to={target}") == 1


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1/x.jpg", "gopher://127.0.0.1:70/_x"])
def test_other_schemes_are_refused(server: MisbehavingServer, tmp_path: Path, target: str) -> None:
    redirected = server.url(f"/redirect?to={target}")
    _, rows = fetch([target, redirected], tmp_path)
    for url in (target, redirected):
        assert (rows[url].status, rows[url].error_kind) == (Status.REFUSED, "blocked_scheme")


def test_every_hop_is_vetted_again_even_on_the_same_host(
    server: MisbehavingServer, tmp_path: Path, resolver: FakeResolver
) -> None:
    """flip.test resolves to the allowed address first and to a private one on the next lookup (rebinding)."""
    final = server.url("/ok.jpg", host="flip.test")
    url = server.url(f"/redirect?to={final}", host="flip.test")
    _, rows = fetch([url], tmp_path, resolver, max_attempts=1)
    assert (rows[url].status, rows[url].error_kind) == (Status.REFUSED, "blocked_address")
    assert resolver.calls["flip.test"] == 2 and server.hits("/ok.jpg") == 0


def test_a_vetted_name_is_pinned_not_resolved_again(server: MisbehavingServer, tmp_path: Path) -> None:
    """The connection goes to the address that was vetted; the transport never does its own lookup
    (network_guard fails any lookup of a real name, so an unpinned connect would fail the test)."""
    resolver = FakeResolver({"rebind.test": [["127.0.0.1"], ["10.9.9.9"]]})
    url = server.url("/ok.jpg", host="rebind.test")
    _, rows = fetch([url], tmp_path, resolver)
    assert rows[url].status is Status.OK and resolver.calls["rebind.test"] == 1


def test_unknown_names_fail_permanently(guard: list[str], tmp_path: Path) -> None:
    url = "http://no-such-host.test/x.jpg"
    _, rows = fetch([url], tmp_path)
    assert (rows[url].status, rows[url].error_kind) == (Status.FAILED_PERMANENT, "dns_error")


def test_allow_listed_name_may_use_a_private_address(server: MisbehavingServer, tmp_path: Path) -> None:
    """A host-name entry allows that name's addresses (here the test server), but not metadata addresses."""
    resolver = FakeResolver({"intranet.test": [["127.0.0.1"]], "meta.test": [["169.254.169.254"]]})
    ok, meta = server.url("/ok.png", host="intranet.test"), "http://meta.test/x"
    _, rows = fetch([ok, meta], tmp_path, resolver, allow_hosts=("intranet.test", "meta.test"))
    assert rows[ok].status is Status.OK
    assert (rows[meta].status, rows[meta].error_kind) == (Status.REFUSED, "blocked_address")


def test_ipv6_loopback_only_when_allowed(guard: list[str], tmp_path: Path) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        server = MisbehavingServer(host="::1").__enter__()
    except OSError:
        pytest.skip("::1 not configured")
    try:
        url = server.url("/ok.png")
        _, rows = fetch([url], tmp_path / "a")  # only 127.0.0.1/32 allowed
        assert (rows[url].status, rows[url].error_kind) == (Status.REFUSED, "blocked_address")
        _, rows = fetch([url], tmp_path / "b", allow_hosts=("::1/128",))
        assert rows[url].status is Status.OK
    finally:
        server.__exit__(None, None, None)


def test_the_network_guard_catches_a_broken_defence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the address policy disabled, a fetch of a private address reaches the guard, which refuses it
    before any packet is sent and records it: the kind of failure every other test relies on."""
    monkeypatch.setattr(AddressPolicy, "verdict", lambda self, host, address: None)
    with network_guard() as violations:
        _, rows = fetch(["http://10.255.255.1/x.jpg"], tmp_path, max_attempts=1)
    assert violations and rows["http://10.255.255.1/x.jpg"].status is not Status.OK


def test_prometheus_metrics_use_the_given_registry(server: MisbehavingServer, tmp_path: Path) -> None:
    prometheus_client = pytest.importorskip("prometheus_client")
    from prodmatch.catalog.download_metrics import DownloadMetrics

    registry = prometheus_client.CollectorRegistry()
    metrics = DownloadMetrics(registry)
    urls = [server.url("/ok.jpg"), server.url("/missing.jpg")]
    for _ in range(2):
        download(urls, tmp_path / "d", tmp_path / "m.db", options(), on_progress=metrics)
    value = registry.get_sample_value
    assert value("prodmatch_catalog_download_urls_total", {"status": "ok", "error_kind": ""}) == 1
    assert value("prodmatch_catalog_download_urls_total", {"status": "failed_permanent", "error_kind": "http_404"}) == 1
    assert value("prodmatch_catalog_download_skipped_urls_total") == 2
    assert value("prodmatch_catalog_download_bytes_total") == len(JPEG)


# --- secrets ---------------------------------------------------------------------------------------------------


def test_credentials_and_query_secrets_never_reach_manifest_or_logs(
    server: MisbehavingServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Our own log at DEBUG, libraries at INFO: httpcore's DEBUG trace prints raw response headers (Location
    # included); it is a library's debugging aid that production logging must leave off.
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="prodmatch")
    elsewhere = server.url("/ok.jpg?sig=hop2secret", host="images.test")
    url = f"http://feeduser:s3cretpw@127.0.0.1:{server.port}/redirect?to={elsewhere}&token=tok123secret"
    _, rows = fetch([url, server.url("/missing.jpg?api_key=key456secret")], tmp_path)
    assert rows[url].status is Status.OK
    assert rows[url].url == f"http://***@127.0.0.1:{server.port}/redirect?to=***&token=***"
    first = next(r for r in server.state.requests if r.path == "/redirect")
    second = next(r for r in server.state.requests if r.path == "/ok.jpg")
    assert first.headers["authorization"].startswith("Basic ")  # credentials go to their own origin...
    assert "authorization" not in second.headers  # ...and not to the host it redirects to
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("manifest.db*"))
    for secret in ("s3cretpw", "tok123secret", "hop2secret", "key456secret"):
        assert secret.encode() not in stored
        assert secret not in caplog.text


def test_redact_url() -> None:
    assert (
        redact_url("https://u:p@h.example:8443/a/b.jpg?x=1&sig=abc#frag")
        == "https://***@h.example:8443/a/b.jpg?x=***&sig=***"
    )
    assert redact_url("http://h/p.jpg") == "http://h/p.jpg"
    assert url_key("http://h/p.jpg?a=1") != url_key("http://h/p.jpg?a=2")


# --- resume ----------------------------------------------------------------------------------------------------


def test_rerun_after_success_fetches_nothing(server: MisbehavingServer, tmp_path: Path) -> None:
    urls = [server.url("/ok.jpg"), server.url("/ok.png"), server.url("/missing.jpg"), server.url("/page.html")]
    fetch(urls, tmp_path)
    hits = sum(server.state.hits.values())
    summary, _ = fetch(urls, tmp_path)
    assert sum(server.state.hits.values()) == hits
    assert (summary.fetched, summary.skipped) == (0, 4)
    assert summary.by_status == {"ok": 2, "failed_transient": 0, "failed_permanent": 1, "refused": 1}


def test_rerun_after_transient_failure_fetches_only_those(server: MisbehavingServer, tmp_path: Path) -> None:
    good, toggle, missing = server.url("/ok.jpg"), server.url("/toggle.png"), server.url("/missing.jpg")
    _, rows = fetch([good, toggle, missing], tmp_path, max_attempts=2)
    assert rows[toggle].status is Status.FAILED_TRANSIENT and rows[toggle].error_kind == "http_503"
    server.state.broken = False
    summary, rows = fetch([good, toggle, missing], tmp_path)
    assert rows[toggle].status is Status.OK and (summary.fetched, summary.skipped) == (1, 2)
    assert (server.hits("/ok.jpg"), server.hits("/toggle.png"), server.hits("/missing.jpg")) == (1, 3, 1)
    summary, _ = fetch([good, toggle, missing], tmp_path, retry_permanent=True)
    assert summary.fetched == 1 and server.hits("/missing.jpg") == 2
    assert_store_consistent(tmp_path / "images", tmp_path / "manifest.db")


def test_rerun_refetches_an_ok_url_whose_file_was_deleted(server: MisbehavingServer, tmp_path: Path) -> None:
    url = server.url("/ok.jpg")
    _, rows = fetch([url], tmp_path)
    stored = tmp_path / "images" / str(rows[url].path)
    stored.unlink()
    summary, _ = fetch([url], tmp_path)
    assert summary.fetched == 1 and stored.is_file()


def test_leftover_temp_files_are_cleaned(server: MisbehavingServer, tmp_path: Path) -> None:
    leftover = tmp_path / "images" / PARTIAL_DIR / "dead.part"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half a jpeg")
    fetch([server.url("/ok.jpg")], tmp_path)
    assert not leftover.exists()


def test_a_destination_in_use_is_refused(tmp_path: Path) -> None:
    with ImageStore(tmp_path / "images"), pytest.raises(DownloadError, match="in use"):
        download([], tmp_path / "images", tmp_path / "m.db", options())


_KILLED_RUN = """
import json, sys
from pathlib import Path
from prodmatch.catalog.download import DownloadOptions, download
from tests.catalog.misbehaving_server import network_guard
urls, dest, manifest = json.loads(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
with network_guard():
    download(urls, dest, manifest, DownloadOptions(allow_hosts=("127.0.0.1/32",), concurrency=4, per_host=4))
"""


def test_sigkill_mid_batch_leaves_a_consistent_store_and_resume_completes_it(
    server: MisbehavingServer, tmp_path: Path
) -> None:
    # Bodies over SPOOL_BYTES sent in two halves: a half-received body sits in a temp file when the kill lands.
    urls = [server.url(f"/large.png?n={n}&pause=0.3") for n in range(24)]
    dest, manifest = tmp_path / "images", tmp_path / "manifest.db"
    child = _start_download_process(urls, dest, manifest)
    try:
        # Kill once some URLs are done and at least one body is half-written into a temp file.
        _wait_for(lambda: _ok_rows(manifest) >= 4 and any((dest / PARTIAL_DIR).glob("*.part")), child)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    assert_store_consistent(dest, manifest, complete=False)
    done_before = [url for url, row in manifest_rows(manifest, urls).items() if row.status is Status.OK]
    assert 4 <= len(done_before) < len(urls)

    summary, _ = fetch(urls, tmp_path, max_bytes=4_000_000)
    assert summary.by_status["ok"] == len(urls) and summary.skipped == len(done_before)
    assert all(server.hits(request_target(url)) == 1 for url in done_before)
    assert_store_consistent(dest, manifest)


def request_target(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def _start_download_process(urls: list[str], dest: Path, manifest: Path) -> subprocess.Popen[bytes]:
    repo = Path(__file__).resolve().parents[2]
    src = Path(prodmatch.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), str(repo)])}
    command = [sys.executable, "-c", _KILLED_RUN, json.dumps(urls), str(dest), str(manifest)]
    return subprocess.Popen(command, cwd=repo, env=env, stderr=subprocess.PIPE)


def _wait_for(condition: Callable[[], bool], child: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert child.poll() is None, (
            f"download process ended early: {child.stderr.read().decode() if child.stderr else ''}"
        )
        if condition():
            return
        time.sleep(0.01)
    pytest.fail("the download process never reached the state to kill it in")


def _ok_rows(manifest: Path) -> int:
    if not manifest.exists():
        return 0
    with contextlib.closing(sqlite3.connect(manifest, timeout=5)) as db:
        try:
            return int(db.execute("SELECT count(*) FROM downloads WHERE status = 'ok'").fetchone()[0])
        except sqlite3.OperationalError:  # table not created yet
            return 0


# --- units -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("93.184.216.34", None),
        ("2606:4700:4700::1111", None),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.0.1", "private"),
        ("169.254.1.1", "link_local"),
        ("169.254.169.254", "cloud_metadata"),
        ("fd00:ec2::254", "cloud_metadata"),
        ("100.100.100.200", "cloud_metadata"),
        ("100.64.0.1", "non_global"),
        ("fe80::1", "link_local"),
        ("fd00::1", "private"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "private"),
        ("2002:a00:1::", "embedded_private"),  # 6to4 of 10.0.0.1
        ("64:ff9b::a9fe:a9fe", "reserved"),  # NAT64 (of 169.254.169.254): Python files ::/8 as reserved
    ],
)
def test_blocked_reason(address: str, reason: str | None) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) == reason


def test_allow_list_networks_and_names() -> None:
    policy = AddressPolicy.from_allow_hosts(["127.0.0.1/32", "Images.Internal"])
    assert policy.verdict("x", ipaddress.ip_address("127.0.0.1")) is None
    assert policy.verdict("x", ipaddress.ip_address("127.0.0.2")) == "loopback"
    assert policy.verdict("images.internal", ipaddress.ip_address("10.0.0.5")) is None
    assert policy.verdict("images.internal", ipaddress.ip_address("169.254.169.254")) == "cloud_metadata"


def test_parse_retry_after() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now) == 0.0
    assert parse_retry_after("soon", now) is None and parse_retry_after(None, now) is None


def test_backoff_grows_with_jitter_and_respects_retry_after() -> None:
    import random

    opts = DownloadOptions(backoff_base=1.0, backoff_max=8.0, retry_after_max=60.0)
    rng = random.Random(0)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (6, 8.0)]:
        delays = [backoff_delay(attempt, opts, None, rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays) and len(set(delays)) > 1
    assert backoff_delay(1, opts, 20.0, rng) == 20.0
    assert backoff_delay(1, opts, 3600.0, rng) == 60.0


def test_percentile() -> None:
    assert percentile([], 50) is None
    assert percentile([10.0], 95) == 10.0
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
