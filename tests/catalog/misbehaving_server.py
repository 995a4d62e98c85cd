"""A deliberately badly behaved image server on 127.0.0.1, and a guard that forbids any other connection.

The server is raw asyncio streams in a background thread (one event loop of its own), so each route can
misbehave at the byte level: drip a body, reset the connection mid-body, lie about the content type, loop
redirects. Every response closes its connection, which keeps the handlers simple.

`network_guard()` patches the socket layer of this process so that a connection attempt to anything but
127.0.0.0/8 or ::1 (or a DNS lookup of a real name) is refused and recorded: a broken SSRF defence then fails
a test instead of sending a packet anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import ipaddress
import socket
import struct
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from PIL import Image

Handler = Callable[["Request", asyncio.StreamWriter, "ServerState"], Awaitable[None]]


def make_image(fmt: str, colour: tuple[int, int, int] = (200, 30, 30), size: int = 16) -> bytes:
    """A small real image in `fmt` (JPEG, PNG, WEBP, GIF)."""
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format=fmt)
    return buffer.getvalue()


JPEG = make_image("JPEG")
PNG = make_image("PNG", (30, 200, 30))
WEBP = make_image("WEBP", (30, 30, 200))
GIF = make_image("GIF", (200, 200, 30))
HTML = b"<!doctype html><html><body>Not an image, but labelled image/jpeg by a misconfigured CDN</body></html>"


def unique_png(n: int) -> bytes:
    """A distinct PNG per n (the colour encodes n)."""
    return make_image("PNG", (n % 256, (n // 256) % 256, 77), size=24)


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    headers: dict[str, str]

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    def query(self, name: str, default: str = "") -> str:
        return parse_qs(urlsplit(self.target).query).get(name, [default])[0]


@dataclass
class ServerState:
    """What the tests can observe and steer; touched by the server thread and the test thread (GIL-atomic ops)."""

    hits: Counter[str] = field(default_factory=Counter)  # by request target (path + query)
    requests: list[Request] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    broken: bool = True  # /toggle.jpg answers 503 while set


class MisbehavingServer:
    """Start with `with MisbehavingServer() as server:`; `server.url("/ok.jpg")` is an absolute URL."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.state = ServerState()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="misbehaving-server", daemon=True)
        self._server: asyncio.Server | None = None

    def url(self, target: str, host: str | None = None) -> str:
        host = host or self.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}{target}"

    def __enter__(self) -> MisbehavingServer:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> asyncio.Server:
        return await asyncio.start_server(self._serve, self.host, 0)

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state = self.state
        try:
            request = await _read_request(reader)
            if request is None:
                return
            state.hits[request.target] += 1
            state.requests.append(request)
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
            try:
                await ROUTES.get(request.path, _not_found)(request, writer, state)
            finally:
                state.in_flight -= 1
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    def hits(self, target: str) -> int:
        return self.state.hits[target]


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return Request(method, target, headers)


async def _respond(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes = b"",
    content_type: str | None = "application/octet-stream",
    headers: dict[str, str] | None = None,
    length: int | None = None,
) -> None:
    lines = [f"HTTP/1.1 {status} X", "Connection: close"]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    lines.append(f"Content-Length: {len(body) if length is None else length}")
    lines.extend(f"{k}: {v}" for k, v in (headers or {}).items())
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    await writer.drain()


def _image(body: bytes, content_type: str) -> Handler:
    async def handler(request: Request, writer: asyncio.StreamWriter, state: ServerState) -> None:
        await _respond(writer, 200, body, content_type)

    return handler


async def _not_found(request: Request, writer: asyncio.StreamWriter, state: ServerState) -> None:
    await _respond(writer, 404, b"not found", "text/plain")


async def _flaky(request: Request, writer: asyncio.StreamWriter, state: ServerState) -> None:
    """500 on the first request for this exact target, then a PNG."""
    if state.hits[request.target] == 1:
        await _respond(writer, 500, b"oops", "text/plain")
    else:
        await _respond(writer, 200, PNG, "image/png")


async def _toggle(request: Request, writer: asyncio.StreamWriter, state: ServerState) -> None:
    if state.broken:
        await _respond(writer, 503, b"down", "text/plain")
    else:
        await _respond(writer, 200, make_image("PNG", (1, 2, 3)), "image/png")


async def _busy(request: Request, writer: asyncio.StreamWriter, state: ServerState) -> None:
    """429 once with Retry-After (?after=seconds, or ?date=seconds-from-now as an HTTP-date), then a GIF."""
    if state.hits[request.target] > 1:
        await _respond(writer, 200, GIF, "image/gif")
        return
    if request.query("date"):
        when = datetime.now(UTC) + timedelta(seconds=float(request.query("date")))
        retry_after = format_datetime(when, usegmt=True)
    else:
        retry_after = request.query("after", "1")
    await _respond(writer, 429, b"slow down", "text/plain", {"Retry-After": retry_after})


async def _drip(request: Request, writer: asyncio.StreamWriter, state: ServerState) -> None:
    """Headers, a few bytes, then a pause longer than any read timeout the tests use: a stalled body."""
    await _respond(writer, 200, JPEG[:100], "image/jpeg", length=len(JPEG))
    await asyncio.sleep(30)


async def _trickle(request: Request, writer: asyncio.StreamWriter, state: ServerState) -> None:
    """A byte every 50 ms: never idle long enough for a read timeout, only a total timeout stops it."""
    await _respond(writer, 200, JPEG[:3], "image/jpeg", length=50_000)
    for _ in range(100_000):
        await asyncio.sleep(0.05)
        writer.write(b"\0")
        await writer.drain()


async def _reset(request: Request, writer: asyncio.StreamWriter, state: ServerState) -> None:
    """Half the body, then a TCP RST (SO_LINGER 0 + abort)."""
    await _respond(writer, 200, JPEG[: len(JPEG) // 2], "image/jpeg", length=len(JPEG))
    await asyncio.sleep(0.05)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _big(request: Request, writer: asyncio.StreamWriter, state: ServerState) -> None:
    """A valid JPEG start, then far more bytes than the cap, with no Content-Length (close-delimited)."""
    writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: image/jpeg\r\n\r\n" + JPEG[:-2])
    for _ in range(64):
        writer.write(b"\0" * 16384)
        await writer.drain()


async def _big_declared(request: Request, writer: asyncio.StreamWriter, state: ServerState) -> None:
    await _respond(writer, 200, JPEG, "image/jpeg", length=50_000_000)


async def _redirect(request: Request, writer: asyncio.StreamWriter, state: ServerState) -> None:
    status = int(request.query("status", "302"))
    await _respond(writer, status, b"", None, {"Location": request.query("to")})


async def _loop(request: Request, writer: asyncio.StreamWriter, state: ServerState) -> None:
    await _respond(writer, 302, b"", None, {"Location": "/loop"})


async def _chain(request: Request, writer: asyncio.StreamWriter, state: ServerState) -> None:
    """/chain?n=3 -> /chain?n=2 -> ... -> /ok.png (relative Locations)."""
    n = int(request.query("n", "0"))
    await _respond(writer, 301, b"", None, {"Location": f"/chain?n={n - 1}" if n > 1 else "/ok.png"})


def large_png(n: int, size: int = 1_500_000) -> bytes:
    """A distinct body over download_store.SPOOL_BYTES: a PNG followed by padding (only the magic is checked)."""
    head = unique_png(n)
    return head + bytes([n % 251]) * (size - len(head))


async def _large(request: Request, writer: asyncio.StreamWriter, state: ServerState) -> None:
    """?n= picks the body; it is sent in two halves with a pause (?pause=) so a kill can land mid-spill."""
    body = large_png(int(request.query("n", "0")))
    await _respond(writer, 200, body[: len(body) // 2], "image/png", length=len(body))
    await asyncio.sleep(float(request.query("pause", "0")))
    writer.write(body[len(body) // 2 :])
    await writer.drain()


async def _slow_unique(request: Request, writer: asyncio.StreamWriter, state: ServerState) -> None:
    """A distinct PNG per ?n=, sent in two halves with a pause: a kill lands mid-body."""
    body = unique_png(int(request.query("n", "0")))
    await _respond(writer, 200, body[: len(body) // 2], "image/png", length=len(body))
    await asyncio.sleep(float(request.query("pause", "0.2")))
    writer.write(body[len(body) // 2 :])
    await writer.drain()


async def _slow(request: Request, writer: asyncio.StreamWriter, state: ServerState) -> None:
    await asyncio.sleep(0.3)
    await _respond(writer, 200, JPEG, "image/jpeg")


ROUTES: dict[str, Handler] = {
    "/ok.jpg": _image(JPEG, "image/jpeg"),
    "/copy.jpg": _image(JPEG, "image/jpeg; charset=binary"),
    "/ok.png": _image(PNG, "image/png"),
    "/ok.webp": _image(WEBP, "image/webp"),
    "/ok.gif": _image(GIF, "image/gif"),
    "/octet.png": _image(PNG, "application/octet-stream"),
    "/html-as-jpeg.jpg": _image(HTML, "image/jpeg"),
    "/page.html": _image(HTML, "text/html; charset=utf-8"),
    "/svg": _image(b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml"),
    "/empty.jpg": _image(b"", "image/jpeg"),
    "/flaky.png": _flaky,
    "/toggle.png": _toggle,
    "/busy.gif": _busy,
    "/drip.jpg": _drip,
    "/trickle.jpg": _trickle,
    "/reset.jpg": _reset,
    "/big.jpg": _big,
    "/big-declared.jpg": _big_declared,
    "/redirect": _redirect,
    "/loop": _loop,
    "/chain": _chain,
    "/slow-unique.png": _slow_unique,
    "/slow.jpg": _slow,
    "/large.png": _large,
}

# --- network guard --------------------------------------------------------------------------------------------

_LOCAL = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


def _is_local(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    try:
        address = ipaddress.ip_address(str(host).split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in net for net in _LOCAL if net.version == address.version)


@contextlib.contextmanager
def network_guard() -> Iterator[list[str]]:
    """Refuse (and record) every connect outside 127.0.0.0/8 and ::1, and every DNS lookup of a non-literal name.

    Yields the list of violations; the caller fails the test when it is not empty (the code under test may
    well swallow the refusal into a manifest row).
    """
    violations: list[str] = []

    def check(what: str, address: object) -> None:
        if isinstance(address, str | bytes):  # AF_UNIX path: not the network
            return
        host = address[0] if isinstance(address, tuple) else address
        if not _is_local(host):
            violations.append(f"{what} {address!r}")
            raise ConnectionRefusedError(f"network guard: {what} to {address!r} is not allowed in tests")

    patches = _guard_patches(check)
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    for owner, name, wrapper in patches:
        setattr(owner, name, wrapper)
    try:
        yield violations
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


def _guard_patches(check: Callable[[str, object], None]) -> list[tuple[Any, str, Any]]:
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo
    loop_cls = asyncio.base_events.BaseEventLoop
    real_create_connection = loop_cls.create_connection
    selector_cls = asyncio.selector_events.BaseSelectorEventLoop
    real_sock_connect = selector_cls.sock_connect

    def connect(self: socket.socket, address: Any) -> None:
        check("socket.connect", address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check("socket.connect_ex", address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None:
            check("getaddrinfo", (host,))
        return real_getaddrinfo(host, *args, **kwargs)

    async def create_connection(self: Any, protocol_factory: Any, host: Any = None, *args: Any, **kw: Any) -> Any:
        if host is not None:
            check("loop.create_connection", (host,))
        return await real_create_connection(self, protocol_factory, host, *args, **kw)

    async def sock_connect(self: Any, sock: socket.socket, address: Any) -> None:
        check("loop.sock_connect", address)
        await real_sock_connect(self, sock, address)

    return [
        (socket.socket, "connect", connect),
        (socket.socket, "connect_ex", connect_ex),
        (socket, "getaddrinfo", getaddrinfo),
        (loop_cls, "create_connection", create_connection),
        (selector_cls, "sock_connect", sock_connect),
    ]
