"""Where catalog downloads may connect: URL vetting against SSRF, and an HTTP transport pinned to vetted addresses.

A catalog feed is untrusted input: a URL (or a redirect it leads to) can name the cloud metadata service, a
database on the private network or the host itself. The defence has three parts:

1. `vet_url` accepts only http/https, resolves the host once (async getaddrinfo, or an injected resolver) and
   refuses it when ANY of its addresses is loopback, private, link-local, multicast, reserved, unspecified,
   shared (CGNAT), a cloud metadata address, or embeds such an IPv4 address (mapped, 6to4, Teredo, NAT64),
   unless the address or host name is in the caller's allow-list. The downloader calls it before every
   request, so every redirect hop is vetted too.
2. `PinnedBackend` is the httpcore network backend of the transport: it connects only to the addresses
   `vet_url` returned for that host name (re-checking them) and never resolves names itself. A DNS answer
   that changes between the check and the connect (DNS rebinding) therefore cannot redirect the socket:
   there is no second lookup. The URL keeps its host name, so the Host header, TLS SNI and certificate
   verification are the normal ones for that name, and pooled connections stay keyed by host name.
3. `PinnedTransport` is httpx's own transport with that backend, used without an httpx.Client: no proxy
   from the environment (a proxy would resolve names itself), no cookie jar shared across hosts, and no
   request log line carrying full URLs.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import re
import socket
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, parse_qsl, quote, urlsplit, urlunsplit

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# (host, port) -> address strings, as getaddrinfo would answer; tests inject a fake one.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

ALLOWED_SCHEMES = frozenset({"http", "https"})
# Instance-metadata endpoints of the major clouds (AWS IMDS v4/v6, ECS, GCP, Azure, OpenStack, Alibaba, Oracle).
# Most are link-local or shared space anyway; naming them keeps them refused even when a host-name allow-list
# entry would otherwise let a private address through.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.170.2",
        "169.254.169.253",
        "169.254.169.123",
        "fd00:ec2::254",
        "fd00:ec2::23",
        "100.100.100.200",
        "192.0.0.192",
    )
)
# NAT64 prefixes (RFC 6052 well-known, RFC 8215 local-use) carry an IPv4 address in their low 32 bits.
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
# Dotted hosts whose last label is numeric or hex are IP literals in some parser's eyes ("0x7f.1", "2130706433");
# only canonical dotted quads are accepted, so what is vetted is what every resolver would connect to.
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
_REDACTED = "***"
_PIN_CACHE_MIN = 1024


class Refused(Exception):
    """The URL must not be fetched (scheme or address policy); `kind` is a short machine-readable reason."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class ResolveFailed(Exception):
    """The host name did not resolve; `transient` when a later try may succeed (timeout, EAI_AGAIN)."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class Target:
    """A vetted hop: the host name as connected (IDNA, lower case), its port and the addresses it may use."""

    host: str
    port: int
    addresses: tuple[IPAddress, ...]


def url_key(url: str) -> str:
    """The manifest key of a URL: sha256 of the full string, so secrets in it never need to be stored."""
    return hashlib.sha256(url.strip().encode("utf-8", "surrogatepass")).hexdigest()


def redact_url(url: str) -> str:
    """The URL for display: userinfo and every query value replaced by ***, fragment dropped, keys kept."""
    try:
        parts = urlsplit(url.strip())
        netloc = _redact_netloc(parts)
    except ValueError:
        return "<unparseable url>"
    query = "&".join(f"{quote(k, safe='')}={_REDACTED}" for k, _ in parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _redact_netloc(parts: SplitResult) -> str:
    if "@" not in parts.netloc:
        return parts.netloc
    return f"{_REDACTED}@{parts.netloc.rsplit('@', 1)[1]}"


@dataclass(frozen=True)
class AddressPolicy:
    """Which non-public addresses are nevertheless allowed: explicit networks, and host names (not metadata)."""

    networks: tuple[IPNetwork, ...] = ()
    hostnames: frozenset[str] = frozenset()

    @classmethod
    def from_allow_hosts(cls, entries: Iterable[str]) -> AddressPolicy:
        """Entries are CIDRs or single addresses ("127.0.0.1/32", "::1") or host names ("images.internal")."""
        networks: list[IPNetwork] = []
        hostnames: set[str] = set()
        for entry in (e.strip() for e in entries):
            try:
                networks.append(ipaddress.ip_network(entry, strict=True))
            except ValueError:
                hostnames.add(_canonical_hostname(entry))
        return cls(tuple(networks), frozenset(hostnames))

    def verdict(self, host: str, address: IPAddress) -> str | None:
        """None when `host` may connect to `address`, else the reason it may not."""
        if any(address in net for net in self.networks if net.version == address.version):
            return None
        reason = blocked_reason(address)
        if reason is None or (host in self.hostnames and reason != "cloud_metadata"):
            return None
        return reason


def _canonical_hostname(name: str) -> str:
    try:
        return httpx.URL(f"http://{name}/").raw_host.decode("ascii")
    except (httpx.InvalidURL, UnicodeError):
        return name.lower()


def blocked_reason(address: IPAddress) -> str | None:
    """Why a (non-allow-listed) address must not be contacted, or None for a public unicast address."""
    reason = _own_blocked_reason(address)
    if reason is not None or not isinstance(address, ipaddress.IPv6Address):
        return reason
    for embedded in _embedded_ipv4(address):
        inner = _own_blocked_reason(embedded)
        if inner is not None:
            return f"embedded_{inner}"
    return None


def _own_blocked_reason(address: IPAddress) -> str | None:
    checks = (
        (address in METADATA_ADDRESSES, "cloud_metadata"),
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link_local"),
        (address.is_multicast, "multicast"),
        (address.is_private, "private"),
        (address.is_reserved, "reserved"),
        (isinstance(address, ipaddress.IPv6Address) and address.is_site_local, "site_local"),
        (not address.is_global, "non_global"),  # e.g. 100.64.0.0/10 shared address space
    )
    return next((reason for hit, reason in checks if hit), None)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    found = [a for a in (address.ipv4_mapped, address.sixtofour) if a is not None]
    if address.teredo is not None:
        found.extend(address.teredo)
    if any(address in net for net in _NAT64):
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with the event loop's getaddrinfo (a thread pool), TCP only."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def vet_url(url: httpx.URL, policy: AddressPolicy, resolver: Resolver, timeout: float) -> Target:
    """Check one hop: scheme, host form, and every resolved address. Raises Refused or ResolveFailed."""
    if url.scheme not in ALLOWED_SCHEMES:
        raise Refused("blocked_scheme", f"scheme {url.scheme!r} is not http or https")
    host = url.raw_host.decode("ascii")
    if not host:
        raise Refused("invalid_url", "URL has no host")
    port = url.port or (443 if url.scheme == "https" else 80)
    literal = _parse_literal(host)
    addresses = (literal,) if literal is not None else await _resolve(host, port, resolver, timeout)
    for address in addresses:
        reason = policy.verdict(host, address)
        if reason is not None:
            raise Refused("blocked_address", f"{host} resolves to a {reason.replace('_', ' ')} address")
    return Target(host, port, addresses)


def _parse_literal(host: str) -> IPAddress | None:
    """The address of an IP-literal host, None for a name; refuses zone ids and non-canonical numeric forms."""
    if "%" in host:
        raise Refused("blocked_address", "scoped IPv6 addresses are not allowed")
    try:
        return _normalise(ipaddress.ip_address(host))
    except ValueError:
        pass
    if _NUMERIC_LABEL.match(host.rstrip(".").rsplit(".", 1)[-1]):
        raise Refused("blocked_address", f"ambiguous numeric host {host!r}")
    return None


def _normalise(address: IPAddress) -> IPAddress:
    """IPv4-mapped IPv6 is checked and connected to as the IPv4 address it stands for."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


async def _resolve(host: str, port: int, resolver: Resolver, timeout: float) -> tuple[IPAddress, ...]:
    try:
        async with asyncio.timeout(timeout):
            answers = await resolver(host, port)
    except TimeoutError:
        raise ResolveFailed(f"resolving {host} timed out", transient=True) from None
    except socket.gaierror as exc:
        raise ResolveFailed(
            f"resolving {host} failed: {exc.strerror}", transient=exc.errno == socket.EAI_AGAIN
        ) from None
    except OSError as exc:
        raise ResolveFailed(f"resolving {host} failed: {exc}", transient=True) from None
    # dict.fromkeys: unique, in resolver order (the order connects are tried in).
    addresses = tuple(dict.fromkeys(_normalise(ipaddress.ip_address(a.split("%", 1)[0])) for a in answers))
    if not addresses:
        raise ResolveFailed(f"{host} has no addresses", transient=False)
    return addresses


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects a host name only to the addresses last vetted for it; never resolves names itself.

    The pin table is bounded (least recently vetted dropped first). A host whose pin was dropped while its
    request was waiting fails to connect with a ConnectError, which the downloader retries after vetting again.
    """

    def __init__(self, policy: AddressPolicy, max_pins: int = _PIN_CACHE_MIN) -> None:
        self._policy = policy
        self._pins: OrderedDict[str, tuple[IPAddress, ...]] = OrderedDict()
        self._max_pins = max(max_pins, _PIN_CACHE_MIN)
        self._inner = httpcore.AnyIOBackend()

    def pin(self, target: Target) -> None:
        """Record the vetted addresses of `target.host`; later connections to that name use only these."""
        self._pins[target.host] = target.addresses
        self._pins.move_to_end(target.host)
        while len(self._pins) > self._max_pins:
            self._pins.popitem(last=False)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = self._pins.get(host)
        if not addresses:
            raise httpcore.ConnectError(f"{host} was not vetted before connecting")
        last_error: Exception | None = None
        for address in addresses:
            # Defence in depth: a pin can only hold vetted addresses, but re-checking is cheap.
            if self._policy.verdict(host, address) is not None:
                raise httpcore.ConnectError(f"refusing to connect {host} to {address}")
            try:
                return await self._inner.connect_tcp(str(address), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None  # the loop ran at least once
        raise last_error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are never used for catalog downloads")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport (request/response mapping, exception mapping) over a connection pool using `backend`."""

    def __init__(self, backend: PinnedBackend, *, verify: bool, limits: httpx.Limits) -> None:
        super().__init__(verify=verify, limits=limits, trust_env=False)
        # httpx offers no public hook for the network backend; the pool it built above is unused (it opens
        # nothing until a request) and is replaced. Guarded so an httpx change fails loudly, not silently
        # unpinned; tests/catalog/test_download.py also proves pinning end to end.
        if not isinstance(getattr(self, "_pool", None), httpcore.AsyncConnectionPool):
            raise RuntimeError("httpx.AsyncHTTPTransport internals changed: cannot pin connections")
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )
