"""The only code that downloads a URL. Every URL is hostile: it may point inside our network, redirect there,
trickle forever, or send more bytes than it admits.

Guards: http/https only; the host is resolved once and every address must be global or on the allow-list
SPOTCHECK_FETCH_ALLOW (see ``address_refusal``); the connection goes to the checked address (Host header,
TLS SNI and certificate verification still use the hostname, so DNS cannot rebind between check and
connect); at most
``SPOTCHECK_FETCH_MAX_REDIRECTS`` redirects, each checked again; connect/read timeouts plus a total deadline
enforced by a watchdog that closes the socket; a byte cap counted while streaming, after gzip/deflate
decoding. Each failure is a ``FetchFailed`` whose ``reason`` is a ``FetchError`` value or ``http_<status>``.
"""

from __future__ import annotations

import contextlib
import heapq
import http.client
import ipaddress
import itertools
import re
import select
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote, urljoin, urlsplit

import certifi
from django.conf import settings

from classification.models import FetchError
from core.retry import RETRY

USER_AGENT = "Spotcheck/1.0 (+image classification)"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CHUNK = 64 * 1024

# Ranges refused even when Python's ipaddress calls them global (its tables lag the IANA registries in
# some versions), plus every special-purpose block an attacker could use to reach us.
_BLOCKED_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/127",
        "64:ff9b::/96",
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
        "2002::/16",
        "3fff::/20",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    )
)
_LOOPBACK_NETWORKS = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))

# getaddrinfo has no timeout of its own; resolving in a small pool lets the deadline bound it.
_resolver = ThreadPoolExecutor(max_workers=8, thread_name_prefix="spotcheck-dns")


class FetchFailed(Exception):
    """A URL could not be fetched; ``reason`` is what gets stored on the image source."""

    def __init__(self, reason: str, detail: str = "", *, retry_after: float | None = None) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = str(reason)
        self.detail = detail
        self.retry_after = retry_after  # seconds the server asked us to wait (Retry-After, capped)

    @property
    def transient(self) -> bool:
        """Worth trying again later (core.retry): timeouts, connection trouble, DNS, 429 and 5xx."""
        return RETRY.reason_transient(self.reason)


@dataclass(frozen=True)
class Fetched:
    """A successful answer: 200 with the body, or 304 (the validators still match) with none."""

    url: str
    status: int
    content: bytes | None
    etag: str = ""
    last_modified: str = ""
    content_length: int | None = None
    content_type: str = ""

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    packed = ip.packed
    if packed[:12] == bytes(12):  # IPv4-compatible ::a.b.c.d (deprecated, still routed by some stacks)
        return ipaddress.IPv4Address(packed[12:])
    if packed[:4] == b"\x00\x64\xff\x9b":  # NAT64 64:ff9b::/96 and 64:ff9b:1::/48
        return ipaddress.IPv4Address(packed[12:])
    return None


@dataclass(frozen=True)
class AllowList:
    """SPOTCHECK_FETCH_ALLOW: addresses fetched although not global. An entry is an exact ``ip:port`` (IPv6
    in brackets: ``[::1]:8080``) or a network in CIDR notation (``10.20.0.0/16``, any port). Entries match the
    resolved address of every hop, never a hostname, so a redirect to another port of an allowed host is
    refused."""

    endpoints: frozenset[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]] = frozenset()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def parse(cls, entries: Sequence[str]) -> AllowList:
        """Raise ValueError naming the first entry that is neither ``ip:port`` nor a CIDR network."""
        endpoints, networks = set(), []
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            if "/" in entry:
                try:
                    networks.append(ipaddress.ip_network(entry, strict=False))
                except ValueError:
                    raise ValueError(f"{entry!r} is not a CIDR network") from None
                continue
            host, sep, port = entry.rpartition(":")
            host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
            try:
                ip, number = ipaddress.ip_address(host), int(port)
            except ValueError:
                raise ValueError(f"{entry!r} is not ip:port (a name is not accepted: addresses are checked)") from None
            if not sep or not 0 < number < 65536:
                raise ValueError(f"{entry!r} has no valid port")
            endpoints.add((ip, number))
        return cls(frozenset(endpoints), tuple(networks))

    def allows(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int | None) -> bool:
        return (ip, port) in self.endpoints or any(ip.version == n.version and ip in n for n in self.networks)

    def allows_loopback(self) -> bool:
        """Whether any entry reaches 127/8 or ::1: for tests and the demo only (core.E001 refuses it with
        DEBUG=0)."""
        return any(ip.is_loopback for ip, _port in self.endpoints) or any(
            net.version == loop.version and net.overlaps(loop) for net in self.networks for loop in _LOOPBACK_NETWORKS
        )


@lru_cache(maxsize=8)
def _allow_list(entries: tuple[str, ...]) -> AllowList:
    return AllowList.parse(entries)


def allow_list() -> AllowList:
    """The parsed SPOTCHECK_FETCH_ALLOW (system check core.E002 reports a malformed entry at startup)."""
    return _allow_list(tuple(settings.SPOTCHECK_FETCH_ALLOW))


def address_refusal(address: str, *, port: int | None = None, allowed: AllowList | None = None) -> str | None:
    """Why an IP address (and port) must not be fetched from (a short phrase), or None when it is global or
    on the allow-list (default: SPOTCHECK_FETCH_ALLOW)."""
    return _address_refusal(address, port, allow_list() if allowed is None else allowed)


@lru_cache(maxsize=4096)
def _address_refusal(address: str, port: int | None, allowed: AllowList) -> str | None:
    """``address_refusal`` as a pure function of its arguments, remembered (every request checks one)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "not an IP address"
    if "%" in address:
        return "scoped (link-local) IPv6 address"
    if allowed.allows(ip, port):
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            inner = address_refusal(str(embedded), allowed=AllowList())
            if inner:
                return f"IPv6 carrying {embedded} ({inner})"
    for net in _BLOCKED_NETWORKS:
        if ip.version == net.version and ip in net:
            return f"in {net}"
    if not ip.is_global or ip.is_multicast:
        return "not a global unicast address"
    return None


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str  # as written, without brackets
    port: int
    path: str  # path + query, never the fragment

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


def _parse(url: str) -> _Target:
    """The URL's parts as the request will carry them. Dealers' URLs are often IRIs: a non-ASCII host is sent
    in its IDNA form and non-ASCII characters of the path and query percent-encoded as UTF-8, as browsers do;
    whitespace and control characters are refused (they could split the request line)."""
    if not isinstance(url, str) or len(url) > 4096 or any(c <= " " or c == "\x7f" for c in url):
        raise FetchFailed(FetchError.INVALID_URL, "not a well-formed URL")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise FetchFailed(FetchError.INVALID_URL, str(exc)) from None
    scheme = parts.scheme.lower()
    if scheme not in {"http", "https"}:
        raise FetchFailed(FetchError.BLOCKED_SCHEME, f"scheme {scheme or '(none)'!r} is not http or https")
    if parts.username is not None or parts.password is not None:
        raise FetchFailed(FetchError.INVALID_URL, "credentials in URLs are not accepted")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise FetchFailed(FetchError.INVALID_URL, "no host")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise FetchFailed(FetchError.INVALID_URL, "a host name that has no IDNA form") from None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    if not path.isascii():
        path = _NON_ASCII.sub(lambda match: quote(match.group(), safe=""), path)
    return _Target(scheme, host, port or (443 if scheme == "https" else 80), path)


def _resolve(host: str, port: int, timeout: float) -> list[str]:
    """Every address the host resolves to (IP literals in any legacy spelling included)."""
    if "%" not in host:
        with contextlib.suppress(ValueError):
            return [str(ipaddress.ip_address(host))]  # a canonical literal: nothing to ask the resolver
    try:
        future = _resolver.submit(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM)
        infos = future.result(timeout=max(0.01, timeout))
    except FutureTimeout:
        raise FetchFailed(FetchError.TIMEOUT, f"resolving {host}") from None
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise FetchFailed(FetchError.DNS, f"{host}: {exc}") from None
    addresses = []
    for family, _type, _proto, _name, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6) and sockaddr[0] not in addresses:
            addresses.append(sockaddr[0])
    if not addresses:
        raise FetchFailed(FetchError.DNS, f"{host}: no address")
    return addresses


def _checked_addresses(target: _Target, timeout: float) -> list[str]:
    addresses = _resolve(target.host, target.port, timeout)
    for address in addresses:
        # One refused address refuses the host: an attacker controls which record we would pick.
        refusal = address_refusal(address, port=target.port)
        if refusal:
            raise FetchFailed(FetchError.BLOCKED_ADDRESS, f"{target.host} → {address}: {refusal}")
    return addresses


class _Watchdog:
    """Shuts the socket down when the total deadline passes, whatever phase it is stuck in (a server
    trickling headers or body one byte at a time never trips a per-read timeout). One thread serves every
    fetch of the process (``_deadlines``): a timer thread per request cost more than a 304 itself."""

    __slots__ = ("_conn", "at", "cancelled", "fired")

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + max(0.0, seconds)
        self.fired = False
        self.cancelled = False
        self._conn: socket.socket | None = None
        _deadlines.add(self)

    def watch(self, conn: socket.socket | None) -> None:
        with _deadlines.lock:
            self._conn = conn
            fired = self.fired
        if fired and conn is not None:
            _abort(conn)

    def cancel(self) -> None:
        _deadlines.cancel(self)


class _Deadlines:
    """The watchdogs' deadlines and one daemon thread that fires them (started on first use, again after a
    fork). A cancelled watchdog stays in the heap, marked, until it reaches the top or the heap is compacted
    (when most of it is cancelled); the thread sleeps until the earliest deadline still live, so a fetch that
    ends in time costs no wake-up at all."""

    COMPACT_MIN = 256

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._cond = threading.Condition(self.lock)
        self._heap: list[tuple[float, int, _Watchdog]] = []
        self._cancelled = 0  # cancelled entries still in the heap
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, watchdog: _Watchdog) -> None:
        with self._cond:
            heapq.heappush(self._heap, (watchdog.at, next(self._seq), watchdog))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="spotcheck-fetch-deadlines", daemon=True)
                self._thread.start()
            if self._heap[0][2] is watchdog:
                self._cond.notify()

    def cancel(self, watchdog: _Watchdog) -> None:
        with self._cond:
            if watchdog.cancelled or watchdog.fired:
                watchdog._conn = None
                return
            watchdog.cancelled = True
            watchdog._conn = None
            self._cancelled += 1
            if self._cancelled > self.COMPACT_MIN and 2 * self._cancelled > len(self._heap):
                self._heap = [entry for entry in self._heap if not entry[2].cancelled]
                heapq.heapify(self._heap)
                self._cancelled = 0

    def _due(self) -> tuple[_Watchdog, socket.socket | None]:
        """Wait for the earliest live deadline to pass; mark its watchdog fired (under the lock)."""
        with self._cond:
            while True:
                while self._heap and self._heap[0][2].cancelled:
                    heapq.heappop(self._heap)
                    self._cancelled -= 1
                if not self._heap:
                    self._cond.wait()
                    continue
                at, _seq, watchdog = self._heap[0]
                wait = at - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                watchdog.fired = True
                return watchdog, watchdog._conn

    def _run(self) -> None:
        while True:
            _watchdog, conn = self._due()
            if conn is not None:
                _abort(conn)

    def __len__(self) -> int:
        """Entries held, cancelled ones not yet dropped included."""
        with self._cond:
            return len(self._heap)


_deadlines = _Deadlines()


def _abort(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _Decoder:
    """gzip/deflate decoding that never produces more than ``limit`` bytes (decompression bombs)."""

    def __init__(self, encoding: str, limit: int) -> None:
        self.limit = limit
        self.produced = 0
        encoding = encoding.strip().lower()
        if encoding in {"", "identity"}:
            self._z = None
        elif encoding in {"gzip", "x-gzip"}:
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._z = zlib.decompressobj()
        else:
            raise FetchFailed(FetchError.NOT_AN_IMAGE, f"unsupported Content-Encoding {encoding!r}")
        # "deflate" is sent both zlib-wrapped (the RFC) and raw (common servers): retry raw once.
        self._raw_fallback = encoding == "deflate"
        self._first = True

    def feed(self, chunk: bytes) -> bytes:
        out = chunk if self._z is None else self._inflate(chunk)
        self.produced += len(out)
        if self.produced > self.limit:
            raise FetchFailed(FetchError.TOO_LARGE, f"more than {self.limit} bytes")
        return out

    def _inflate(self, chunk: bytes) -> bytes:
        pieces = []
        data = chunk
        budget = self.limit - self.produced + 1
        while data and budget > 0:
            try:
                piece = self._z.decompress(data, budget)
            except zlib.error:
                if self._first and self._raw_fallback:
                    self._z = zlib.decompressobj(-zlib.MAX_WBITS)
                    self._first = False
                    return self._inflate(chunk)
                raise FetchFailed(FetchError.BAD_IMAGE, "corrupt compressed body") from None
            self._first = False
            pieces.append(piece)
            budget -= len(piece)
            data = self._z.unconsumed_tail
        return b"".join(pieces)

    def finish(self) -> bytes:
        if self._z is None:
            return b""
        out = self._z.flush()
        self.produced += len(out)
        if self.produced > self.limit:
            raise FetchFailed(FetchError.TOO_LARGE, f"more than {self.limit} bytes")
        return out


def _set_timeout(sock: socket.socket, seconds: float) -> None:
    # Once a "Connection: close" body has been read in full, http.client has closed the socket already.
    with contextlib.suppress(OSError):
        sock.settimeout(seconds)


@lru_cache(maxsize=4)
def _tls_context(cafile: str) -> ssl.SSLContext:
    """Loading the CA bundle costs milliseconds: one verifying context per bundle, shared (thread-safe)."""
    return ssl.create_default_context(cafile=cafile)


class _Connection(http.client.HTTPConnection):
    """The standard library's HTTP/1.1 connection, opened to a checked address (``host`` is the address;
    the Host header is sent by us). With ``tls_hostname`` the socket is wrapped in TLS once connected, with
    that name for SNI and for verifying the certificate (the context verifies chain and hostname).

    http.client rather than urllib3's subclass of it: urllib3's request and response wrappers doubled the
    CPU of a 304 re-check (0.26 against 0.15 ms per request, measured on loopback) and gave us nothing
    we use; it stays a dependency of boto3 and requests."""

    def __init__(self, address: str, port: int, *, timeout: float, tls_hostname: str | None = None) -> None:
        super().__init__(address, port, timeout=timeout)
        self.tls_hostname = tls_hostname

    def connect(self) -> None:
        super().connect()
        if self.tls_hostname is not None:
            context = _tls_context(certifi.where())
            self.sock = context.wrap_socket(self.sock, server_hostname=self.tls_hostname)

    @property
    def is_connected(self) -> bool:
        """Open, and idle as it should be: a socket readable between requests was closed by the server (or
        holds bytes nobody asked for)."""
        if self.sock is None:
            return False
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        return not poller.poll(0)


def _connection(target: _Target, address: str, connect_timeout: float) -> _Connection:
    tls_hostname = target.host if target.scheme == "https" else None
    return _Connection(address, target.port, timeout=connect_timeout, tls_hostname=tls_hostname)


def fetch(
    url: str,
    *,
    etag: str = "",
    last_modified: str = "",
    max_bytes: int | None = None,
    deadline: float | None = None,
) -> Fetched:
    """GET ``url`` under every guard; conditional when validators are given (a 304 has no body)."""
    max_bytes = max_bytes or settings.SPOTCHECK_FETCH_MAX_BYTES
    total = deadline if deadline is not None else settings.SPOTCHECK_FETCH_DEADLINE
    connect_timeout = settings.SPOTCHECK_FETCH_CONNECT_TIMEOUT
    read_timeout = settings.SPOTCHECK_FETCH_READ_TIMEOUT
    started = time.monotonic()
    watchdog = _Watchdog(total)

    def remaining() -> float:
        left = total - (time.monotonic() - started)
        if left <= 0 or watchdog.fired:
            raise FetchFailed(FetchError.TIMEOUT, f"total deadline of {total:g}s passed")
        return left

    headers = {"User-Agent": USER_AGENT, "Accept": "image/*", "Accept-Encoding": "gzip, deflate"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    try:
        current = url
        for _hop in range(settings.SPOTCHECK_FETCH_MAX_REDIRECTS + 1):
            target = _parse(current)
            result = _exchange(target, headers, watchdog, remaining, connect_timeout, read_timeout, max_bytes)
            if isinstance(result, str):  # a redirect: check the next hop like the first
                current = urljoin(current, result)
                continue
            return Fetched(url=current, **result)
        raise FetchFailed(FetchError.TOO_MANY_REDIRECTS, f"more than {settings.SPOTCHECK_FETCH_MAX_REDIRECTS}")
    except FetchFailed as exc:
        if watchdog.fired and exc.reason in {FetchError.CONNECTION, FetchError.BAD_IMAGE}:
            raise FetchFailed(FetchError.TIMEOUT, f"total deadline of {total:g}s passed") from None
        raise
    finally:
        watchdog.cancel()


class _Stale(Exception):
    """A kept-alive connection the server had closed: nothing was answered, so a new one is tried."""


class _IdleConnections:
    """Kept-alive connections by (scheme, host, port), each to an address checked when it was opened.

    Reusing one skips DNS and the TCP/TLS handshake; its address is checked again on every take (the
    setting may have changed), and one the server has closed or that sat idle too long is dropped.
    """

    IDLE_SECONDS = 20.0
    PER_KEY = 64

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: dict[tuple, list[tuple[_Connection, str, float]]] = {}

    def take(self, target: _Target) -> tuple[_Connection, str] | None:
        key = (target.scheme, target.host, target.port)
        now = time.monotonic()
        while True:
            with self._lock:
                stack = self._idle.get(key)
                if not stack:
                    return None
                conn, address, since = stack.pop()
            fresh = now - since < self.IDLE_SECONDS and conn.is_connected
            if fresh and address_refusal(address, port=target.port) is None:
                return conn, address
            conn.close()

    def put(self, target: _Target, conn: _Connection, address: str) -> None:
        key = (target.scheme, target.host, target.port)
        with self._lock:
            stack = self._idle.setdefault(key, [])
            if len(stack) < self.PER_KEY:
                stack.append((conn, address, time.monotonic()))
                return
        conn.close()


_idle = _IdleConnections()


def _exchange(target, headers, watchdog, remaining, connect_timeout, read_timeout, max_bytes):
    """One request/response, on a kept-alive connection to this host when there is one, else on a new
    connection to the first reachable checked address: a redirect location or the result."""
    pooled = _idle.take(target)
    if pooled is not None:
        try:
            return _roundtrip(target, *pooled, headers, watchdog, remaining, read_timeout, max_bytes, reused=True)
        except _Stale:
            pass
    addresses = _checked_addresses(target, remaining())
    conn, address = _connect(target, addresses, remaining, connect_timeout)
    return _roundtrip(target, conn, address, headers, watchdog, remaining, read_timeout, max_bytes, reused=False)


def _connect(target, addresses, remaining, connect_timeout) -> tuple[_Connection, str]:
    last_error: Exception | None = None
    for address in addresses:
        conn = _connection(target, address, min(connect_timeout, remaining()))
        try:
            conn.connect()
            return conn, address
        except TimeoutError as exc:
            last_error = exc
        except OSError as exc:
            last_error = exc  # refused, unreachable, or a certificate not valid for the hostname (ssl errors)
        conn.close()
    if isinstance(last_error, TimeoutError | socket.timeout) or "timed out" in str(last_error):
        raise FetchFailed(FetchError.TIMEOUT, f"connecting to {target.host}")
    raise FetchFailed(FetchError.CONNECTION, f"{target.host}: {last_error}")


def _roundtrip(target, conn, address, headers, watchdog, remaining, read_timeout, max_bytes, *, reused):
    # Our own reference: http.client hands the socket over to the response when the server closes after it.
    sock = conn.sock
    watchdog.watch(sock)
    keep = False
    answered = False
    try:
        sock.settimeout(min(read_timeout, remaining()))
        conn.putrequest("GET", target.path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", target.host_header)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        answered = True
        status = response.status
        if status in REDIRECT_STATUSES:
            location = response.headers.get("Location")
            if not location:
                raise FetchFailed(f"http_{status}", "redirect without Location")
            # Header bytes arrive as Latin-1; servers that send a raw IRI send it in UTF-8 (browsers read it so).
            with contextlib.suppress(UnicodeError):
                location = location.encode("latin-1").decode("utf-8")
            return location
        if status == 304:
            response.close()
            keep = True
            return {
                "status": 304,
                "content": None,
                "etag": response.headers.get("ETag", headers.get("If-None-Match", "")),
                "last_modified": response.headers.get("Last-Modified", headers.get("If-Modified-Since", "")),
            }
        if status != 200:
            retry_after = RETRY.retry_after_seconds(response.headers.get("Retry-After"))
            raise FetchFailed(f"http_{status}", response.reason or "", retry_after=retry_after)
        declared = response.headers.get("Content-Length")
        try:
            declared_length = int(declared) if declared is not None else None
        except ValueError:
            declared_length = None
        if declared_length is not None and declared_length > max_bytes:
            raise FetchFailed(FetchError.TOO_LARGE, f"Content-Length {declared_length} > {max_bytes}")
        encoding = response.headers.get("Content-Encoding", "")
        if declared_length is not None and encoding.strip().lower() in {"", "identity"} and not response.chunked:
            # The common case, a picture of known size sent as is: one read into one buffer of that size
            # (already under the cap), filled by the socket directly. Growing a buffer 64 KiB at a time and
            # copying it out cost more CPU than receiving the bytes. The per-read timeout applies to each
            # receive and the watchdog to the whole, as in the loop below.
            _set_timeout(sock, min(read_timeout, remaining()))
            content = response.read(declared_length)
            if len(content) != declared_length:
                remaining()  # the watchdog cut it short: a timeout, not a broken server
                raise FetchFailed(FetchError.CONNECTION, f"IncompleteRead: {len(content)} of {declared_length} bytes")
            remaining()
            response.close()
            keep = True
            return {
                "status": 200,
                "content": content,
                "etag": response.headers.get("ETag", ""),
                "last_modified": response.headers.get("Last-Modified", ""),
                "content_length": declared_length,
                "content_type": response.headers.get("Content-Type", ""),
            }
        decoder = _Decoder(encoding, max_bytes)
        body = bytearray()
        raw_seen = 0
        while True:
            _set_timeout(sock, min(read_timeout, remaining()))
            chunk = response.read1(CHUNK)
            if not chunk:
                if declared_length is not None and not response.chunked and raw_seen != declared_length:
                    raise FetchFailed(FetchError.CONNECTION, f"IncompleteRead: {raw_seen} of {declared_length} bytes")
                break
            raw_seen += len(chunk)
            if raw_seen > max_bytes:  # whatever Content-Length claimed
                raise FetchFailed(FetchError.TOO_LARGE, f"more than {max_bytes} bytes")
            body += decoder.feed(chunk)
            remaining()
        body += decoder.finish()
        # Read to the end: the connection may carry the next request (unless the server closes it).
        response.close()
        keep = declared_length is None or declared_length == raw_seen
        return {
            "status": 200,
            "content": bytes(body),
            "etag": response.headers.get("ETag", ""),
            "last_modified": response.headers.get("Last-Modified", ""),
            "content_length": declared_length,
            "content_type": response.headers.get("Content-Type", ""),
        }
    except FetchFailed:
        raise
    except TimeoutError as exc:
        raise FetchFailed(FetchError.TIMEOUT, str(exc) or "read timed out") from None
    except ssl.SSLError as exc:
        raise FetchFailed(FetchError.CONNECTION, f"TLS: {exc}") from None
    except (OSError, http.client.HTTPException) as exc:
        if "timed out" in str(exc):
            raise FetchFailed(FetchError.TIMEOUT, str(exc)) from None
        if reused and not answered and not watchdog.fired:
            raise _Stale from None
        raise FetchFailed(FetchError.CONNECTION, f"{exc.__class__.__name__}: {exc}") from None
    finally:
        watchdog.watch(None)
        if keep and conn.sock is not None and not watchdog.fired:
            _idle.put(target, conn, address)
        else:
            conn.close()
