"""The safe fetcher: refused addresses and schemes, redirects re-checked, pinned connections, byte caps,
timeouts and the total deadline."""

import contextlib
import gzip
import socket
import time

import pytest

from classification import fetch as fetch_module
from classification.fetch import AllowList, FetchFailed, address_refusal, fetch
from classification.models import FetchError

from .conftest import Reply, trickle

REFUSED_URLS = [
    "http://127.0.0.1/",
    "http://localhost/",
    "http://2130706433/",  # decimal 127.0.0.1
    "http://0177.0.0.1/",  # octal
    "http://0x7f.0.0.1/",  # hex octet
    "http://0x7f000001/",  # hex whole
    "http://017700000001/",  # octal whole
    "http://127.1/",  # short form
    "http://127.0.0.1.:80/",  # trailing dot
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",  # IPv4-mapped IPv6
    "http://[::ffff:7f00:1]/",  # the same, in hex
    "http://[::127.0.0.1]/",  # IPv4-compatible IPv6
    "http://[64:ff9b::7f00:1]/",  # NAT64 of loopback
    "http://[2002:7f00:1::]/",  # 6to4 of loopback
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://[fd00:ec2::254]/",  # AWS metadata over IPv6 (ULA)
    "http://100.64.0.1/",  # CGNAT
    "http://100.127.255.254/",
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://0.0.0.0/",
    "http://0/",
    "http://224.0.0.1/",  # multicast
    "http://239.255.255.250/",
    "http://255.255.255.255/",
    "http://240.0.0.1/",  # reserved
    "http://192.0.0.8/",
    "http://198.18.0.1/",  # benchmarking
    "http://192.0.2.1/",  # documentation
    "http://[fc00::1]/",  # ULA
    "http://[fe80::1]/",  # link-local
    "http://[ff02::1]/",  # multicast
    "http://[::]/",
]


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_non_global_addresses_are_refused_in_every_spelling(url):
    with pytest.raises(FetchFailed) as failure:
        fetch(url)
    assert failure.value.reason == FetchError.BLOCKED_ADDRESS, failure.value


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", FetchError.BLOCKED_SCHEME),
        ("ftp://example.com/a.jpg", FetchError.BLOCKED_SCHEME),
        ("gopher://example.com/", FetchError.BLOCKED_SCHEME),
        ("data:image/png;base64,AAAA", FetchError.BLOCKED_SCHEME),
        ("//example.com/a.jpg", FetchError.BLOCKED_SCHEME),
        ("http:///a.jpg", FetchError.INVALID_URL),
        ("http://user:pw@example.com/a.jpg", FetchError.INVALID_URL),
        ("http://example.com:99999/", FetchError.INVALID_URL),
        ("http://exa mple.com/", FetchError.INVALID_URL),
        ("http://example.com/a\x01b.jpg", FetchError.INVALID_URL),
        ("http://example.com/a\x7fb.jpg", FetchError.INVALID_URL),
        ("http://example.com/a\x1fb.jpg", FetchError.INVALID_URL),
    ],
)
def test_other_schemes_and_malformed_urls_are_refused(url, reason):
    with pytest.raises(FetchFailed) as failure:
        fetch(url)
    assert failure.value.reason == reason


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "2a00:1450:4001::200e"])
def test_global_addresses_are_allowed(address):
    assert address_refusal(address, allowed=AllowList()) is None


def test_allow_list_allows_exactly_its_endpoints_and_networks():
    allowed = AllowList.parse(["127.0.0.1:8123", "[::1]:8123", "10.20.0.0/16"])
    assert address_refusal("127.0.0.1", port=8123, allowed=allowed) is None
    assert address_refusal("::1", port=8123, allowed=allowed) is None
    assert address_refusal("10.20.3.4", port=443, allowed=allowed) is None
    assert address_refusal("127.0.0.1", port=6379, allowed=allowed)  # another port of the same host
    assert address_refusal("127.0.0.2", port=8123, allowed=allowed)
    assert address_refusal("::ffff:127.0.0.1", port=8123, allowed=allowed)
    assert address_refusal("10.21.0.1", port=443, allowed=allowed)
    assert address_refusal("169.254.169.254", port=80, allowed=allowed)


@pytest.mark.parametrize("entry", ["localhost:8000", "127.0.0.1", "127.0.0.1:0", "10.0.0.0/33", "cdn:x"])
def test_allow_list_entries_must_be_ip_port_or_cidr(entry):
    with pytest.raises(ValueError, match=r"ip:port|port|CIDR"):
        AllowList.parse([entry])


def test_a_redirect_to_another_loopback_port_is_refused(picture_server, allow_loopback):
    with socket.socket() as other:  # say, a local Redis
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        picture_server.routes["/r"] = lambda _h: Reply(302, b"", {"Location": f"http://127.0.0.1:{port}/"})
        with pytest.raises(FetchFailed) as failure:
            fetch(picture_server.url("/r"))
    assert failure.value.reason == FetchError.BLOCKED_ADDRESS
    assert "127.0.0.1 → 127.0.0.1" in failure.value.detail or "127.0.0.1" in str(failure.value)


@pytest.mark.django_db
def test_local_server_is_refused_unless_loopback_is_allowed(picture_server, settings, stock_red_jpeg):
    picture_server.serve("/a.jpg", stock_red_jpeg)
    settings.SPOTCHECK_FETCH_ALLOW = []
    with pytest.raises(FetchFailed) as failure:
        fetch(picture_server.url("/a.jpg"))
    assert failure.value.reason == FetchError.BLOCKED_ADDRESS
    assert picture_server.seen == []  # refused before connecting
    settings.SPOTCHECK_FETCH_ALLOW = [f"127.0.0.1:{picture_server.httpd.server_address[1]}"]
    assert fetch(picture_server.url("/a.jpg")).content == stock_red_jpeg


@pytest.mark.parametrize(
    "target", ["http://10.1.2.3/x.jpg", "http://169.254.169.254/latest/meta-data/", "http://[::ffff:127.0.0.1]/"]
)
def test_a_redirect_into_a_private_range_is_refused(picture_server, allow_loopback, target):
    picture_server.routes["/r"] = lambda _h: Reply(302, b"", {"Location": target})
    with pytest.raises(FetchFailed) as failure:
        fetch(picture_server.url("/r"))
    assert failure.value.reason == FetchError.BLOCKED_ADDRESS
    assert picture_server.statuses("/r") == [302]


def test_redirects_are_followed_up_to_five(picture_server, allow_loopback, stock_red_jpeg):
    for i in range(6):
        picture_server.routes[f"/hop{i}"] = lambda _h, i=i: Reply(301, b"", {"Location": f"/hop{i + 1}"})
    picture_server.serve("/hop6", stock_red_jpeg)
    picture_server.routes["/five"] = lambda _h: Reply(302, b"", {"Location": "/hop2"})  # 5 hops to /hop6
    result = fetch(picture_server.url("/five"))
    assert result.content == stock_red_jpeg and result.url.endswith("/hop6")
    with pytest.raises(FetchFailed) as failure:
        fetch(picture_server.url("/hop0"))  # 6 redirects
    assert failure.value.reason == FetchError.TOO_MANY_REDIRECTS


def test_connection_goes_to_the_checked_address_with_the_original_host(
    picture_server, allow_loopback, monkeypatch, stock_red_jpeg
):
    """DNS is asked once per hop and the socket connects to that answer: a rebinding resolver that would
    answer differently the second time is never asked again. Host still names the hostname."""
    picture_server.serve("/a.jpg", stock_red_jpeg)
    port = picture_server.httpd.server_address[1]
    answers = iter(["127.0.0.1", "10.0.0.1"])
    asked = []

    def rebinding_resolver(host, port, timeout):
        asked.append(host)
        return [next(answers)]

    monkeypatch.setattr(fetch_module, "_resolve", rebinding_resolver)
    result = fetch(f"http://pictures.example:{port}/a.jpg")
    assert result.content == stock_red_jpeg
    assert asked == ["pictures.example"]
    assert picture_server.requests("/a.jpg")[0].headers["host"] == f"pictures.example:{port}"


def test_one_private_record_among_public_ones_refuses_the_host(monkeypatch):
    monkeypatch.setattr(fetch_module, "_resolve", lambda host, port, timeout: ["93.184.216.34", "10.0.0.5"])
    with pytest.raises(FetchFailed) as failure:
        fetch("http://mixed.example/a.jpg")
    assert failure.value.reason == FetchError.BLOCKED_ADDRESS


def test_declared_length_over_the_cap_is_refused_without_reading(picture_server, allow_loopback, settings):
    settings.SPOTCHECK_FETCH_MAX_BYTES = 10_000
    picture_server.serve("/big.jpg", b"\xff" * 20_000)
    with pytest.raises(FetchFailed) as failure:
        fetch(picture_server.url("/big.jpg"))
    assert failure.value.reason == FetchError.TOO_LARGE


def _close_delimited(body: bytes):
    def handler(h):
        h.send_response(200)
        h.send_header("Content-Type", "image/jpeg")
        h.send_header("Connection", "close")
        h.end_headers()
        with contextlib.suppress(OSError):
            h.wfile.write(body)
        h.close_connection = True

    return handler


def _chunked(body: bytes, size: int = 4096):
    def handler(h):
        h.send_response(200)
        h.send_header("Content-Type", "image/jpeg")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        try:
            for i in range(0, len(body), size):
                piece = body[i : i + size]
                h.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            h.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass

    return handler


@pytest.mark.parametrize("make", [_close_delimited, _chunked], ids=["no-content-length", "chunked"])
def test_byte_cap_is_enforced_while_streaming(picture_server, allow_loopback, settings, make):
    settings.SPOTCHECK_FETCH_MAX_BYTES = 50_000
    picture_server.raw_routes["/stream"] = make(b"\xff" * 300_000)
    with pytest.raises(FetchFailed) as failure:
        fetch(picture_server.url("/stream"))
    assert failure.value.reason == FetchError.TOO_LARGE


def test_byte_cap_counts_decompressed_bytes(picture_server, allow_loopback, settings):
    """A 30 KB gzip body that inflates to 30 MB is refused at the cap, not inflated."""
    settings.SPOTCHECK_FETCH_MAX_BYTES = 1_000_000
    bomb = gzip.compress(b"\x00" * 30_000_000, compresslevel=9)
    assert len(bomb) < 100_000
    picture_server.serve("/bomb.jpg", bomb, headers={"Content-Encoding": "gzip"})
    with pytest.raises(FetchFailed) as failure:
        fetch(picture_server.url("/bomb.jpg"))
    assert failure.value.reason == FetchError.TOO_LARGE


def test_a_url_with_non_ascii_characters_is_fetched_with_them_percent_encoded(
    picture_server, allow_loopback, stock_red_jpeg
):
    # Dealers publish IRIs ("Škoda Fabia é.jpg" minus the spaces); browsers send their UTF-8, percent-encoded.
    picture_server.serve("/%C5%A0koda-%C3%A9.jpg?c=%C3%A7", stock_red_jpeg)
    assert fetch(picture_server.url("/Škoda-é.jpg?c=ç")).content == stock_red_jpeg
    # Already encoded characters stay as they are.
    assert fetch(picture_server.url("/%C5%A0koda-%C3%A9.jpg?c=%C3%A7")).content == stock_red_jpeg


def test_a_redirect_to_a_raw_utf8_location_is_followed(picture_server, allow_loopback, stock_red_jpeg):
    def moved(h):
        h.send_response(302)
        h.send_header("Location", "/Škoda.jpg".encode().decode("latin-1"))  # the raw UTF-8 bytes on the wire
        h.send_header("Content-Length", "0")
        h.end_headers()

    picture_server.raw_routes["/old-skoda.jpg"] = moved
    picture_server.serve("/%C5%A0koda.jpg", stock_red_jpeg)
    assert fetch(picture_server.url("/old-skoda.jpg")).content == stock_red_jpeg


def test_an_internationalised_host_name_is_resolved_in_its_idna_form(monkeypatch):
    asked = []

    def resolve(host, port, timeout):
        asked.append(host)
        return ["10.0.0.1"]  # refused: nothing is fetched

    monkeypatch.setattr(fetch_module, "_resolve", resolve)
    with pytest.raises(FetchFailed) as failure:
        fetch("http://bücher.example/a.jpg")
    assert failure.value.reason == FetchError.BLOCKED_ADDRESS
    assert asked == ["xn--bcher-kva.example"]


def test_a_server_closing_after_a_sized_body_is_read_in_full(picture_server, allow_loopback, stock_red_jpeg):
    def http10(h):
        h.protocol_version = "HTTP/1.0"
        h.send_response(200)
        h.send_header("Content-Type", "image/jpeg")
        h.send_header("Content-Length", str(len(stock_red_jpeg)))
        h.end_headers()
        h.wfile.write(stock_red_jpeg)
        h.close_connection = True

    picture_server.raw_routes["/old.jpg"] = http10
    assert fetch(picture_server.url("/old.jpg")).content == stock_red_jpeg


def test_a_body_shorter_than_its_content_length_is_a_connection_error(picture_server, allow_loopback, stock_red_jpeg):
    def cut_short(h):
        h.send_response(200)
        h.send_header("Content-Type", "image/jpeg")
        h.send_header("Content-Length", str(len(stock_red_jpeg) + 1000))
        h.end_headers()
        h.wfile.write(stock_red_jpeg)
        h.close_connection = True

    picture_server.raw_routes["/short.jpg"] = cut_short
    with pytest.raises(FetchFailed) as failure:
        fetch(picture_server.url("/short.jpg"))
    assert failure.value.reason == FetchError.CONNECTION


def test_gzip_encoded_picture_is_decoded(picture_server, allow_loopback, stock_red_jpeg):
    picture_server.serve("/z.jpg", gzip.compress(stock_red_jpeg), headers={"Content-Encoding": "gzip"})
    assert fetch(picture_server.url("/z.jpg")).content == stock_red_jpeg


def test_trickling_body_fails_on_the_total_deadline(picture_server, allow_loopback, settings):
    settings.SPOTCHECK_FETCH_DEADLINE = 1.0
    settings.SPOTCHECK_FETCH_READ_TIMEOUT = 5.0  # each byte comes well within the read timeout
    picture_server.raw_routes["/slow.jpg"] = lambda h: trickle(h, interval=0.2, total=100)
    started = time.monotonic()
    with pytest.raises(FetchFailed) as failure:
        fetch(picture_server.url("/slow.jpg"))
    elapsed = time.monotonic() - started
    assert failure.value.reason == FetchError.TIMEOUT
    assert elapsed < 2.0, elapsed


def test_trickling_headers_fail_on_the_total_deadline(picture_server, allow_loopback, settings):
    settings.SPOTCHECK_FETCH_DEADLINE = 1.0
    settings.SPOTCHECK_FETCH_READ_TIMEOUT = 5.0

    def slow_headers(h):
        try:
            for byte in b"HTTP/1.1 200 OK\r\nX-Padding: " + b"a" * 200:
                h.wfile.write(bytes([byte]))
                h.wfile.flush()
                time.sleep(0.1)
        except OSError:
            pass

    picture_server.raw_routes["/slow-headers"] = slow_headers
    started = time.monotonic()
    with pytest.raises(FetchFailed) as failure:
        fetch(picture_server.url("/slow-headers"))
    assert failure.value.reason == FetchError.TIMEOUT
    assert time.monotonic() - started < 2.0


def test_fetches_that_end_in_time_leave_no_deadlines_behind():
    """Cancelled deadlines are dropped in bulk, not kept until they would have expired."""
    for _ in range(20 * fetch_module._Deadlines.COMPACT_MIN):
        fetch_module._Watchdog(30.0).cancel()
    assert len(fetch_module._deadlines) <= 2 * fetch_module._Deadlines.COMPACT_MIN + 2


def test_a_live_deadline_fires_behind_earlier_cancelled_ones():
    cancelled = [fetch_module._Watchdog(0.05) for _ in range(3 * fetch_module._Deadlines.COMPACT_MIN)]
    live = fetch_module._Watchdog(0.3)
    for watchdog in cancelled:
        watchdog.cancel()
    ours, theirs = socket.socketpair()
    with ours, theirs:
        live.watch(ours)
        ours.settimeout(10.0)  # the peer never answers: only the watchdog ends this read
        assert ours.recv(1) == b""
        assert live.fired
        live.cancel()


def test_silent_server_hits_the_read_timeout(picture_server, allow_loopback, settings):
    settings.SPOTCHECK_FETCH_READ_TIMEOUT = 0.5
    picture_server.raw_routes["/silent"] = lambda h: time.sleep(2)
    started = time.monotonic()
    with pytest.raises(FetchFailed) as failure:
        fetch(picture_server.url("/silent"))
    assert failure.value.reason == FetchError.TIMEOUT
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize(("status", "transient"), [(404, False), (403, False), (503, True), (429, True)])
def test_http_errors_map_to_http_status_reasons(picture_server, allow_loopback, status, transient):
    picture_server.routes["/e"] = lambda _h: Reply(status, b"no")
    with pytest.raises(FetchFailed) as failure:
        fetch(picture_server.url("/e"))
    assert failure.value.reason == f"http_{status}"
    assert failure.value.transient is transient


def test_closed_port_is_a_connection_error(allow_loopback):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    allow_loopback(port)
    with pytest.raises(FetchFailed) as failure:
        fetch(f"http://127.0.0.1:{port}/a.jpg")
    assert failure.value.reason == FetchError.CONNECTION
    assert failure.value.transient


@pytest.fixture
def tls_server(tmp_path, picture_server, stock_red_jpeg):
    """The picture server behind TLS with a self-signed certificate for pictures.test only."""
    import shutil
    import ssl
    import subprocess

    if not shutil.which("openssl"):
        pytest.skip("needs the openssl command to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=pictures.test",
         "-addext", "subjectAltName=DNS:pictures.test", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    names = []
    context.sni_callback = lambda sock, name, ctx: names.append(name)
    picture_server.httpd.socket = context.wrap_socket(picture_server.httpd.socket, server_side=True)
    picture_server.serve("/a.jpg", stock_red_jpeg)
    return picture_server, cert, names


def test_https_connects_to_the_pinned_address_with_sni_and_verifies_the_hostname(
    tls_server, allow_loopback, monkeypatch, stock_red_jpeg
):
    server, cert, names = tls_server
    port = server.httpd.server_address[1]
    monkeypatch.setattr(fetch_module, "_resolve", lambda host, port, timeout: ["127.0.0.1"])
    monkeypatch.setattr(fetch_module.certifi, "where", lambda: str(cert))
    assert fetch(f"https://pictures.test:{port}/a.jpg").content == stock_red_jpeg
    assert names == ["pictures.test"]  # SNI names the host, not the address we connected to
    assert server.requests("/a.jpg")[0].headers["host"] == f"pictures.test:{port}"
    with pytest.raises(FetchFailed) as failure:
        fetch(f"https://elsewhere.test:{port}/a.jpg")  # same address, a name the certificate does not cover
    assert failure.value.reason == FetchError.CONNECTION
    assert len(server.requests("/a.jpg")) == 1


@pytest.mark.parametrize("wbits", [15, -15], ids=["zlib-wrapped", "raw"])
def test_deflate_encoded_picture_is_decoded_in_both_spellings(picture_server, allow_loopback, stock_red_jpeg, wbits):
    import zlib

    packer = zlib.compressobj(wbits=wbits)
    body = packer.compress(stock_red_jpeg) + packer.flush()
    picture_server.serve("/d.jpg", body, headers={"Content-Encoding": "deflate"})
    assert fetch(picture_server.url("/d.jpg")).content == stock_red_jpeg


def test_kept_alive_connections_are_reused_and_their_address_checked_again(
    picture_server, allow_loopback, monkeypatch, stock_red_jpeg, settings
):
    """Re-checks reuse one connection per host (no DNS, no handshake), but a pooled connection's address is
    checked on every take: once loopback is refused, the kept-alive connection to it is never used."""
    picture_server.serve("/k.jpg", stock_red_jpeg)
    opened = []
    real_connect = fetch_module._connect
    monkeypatch.setattr(fetch_module, "_connect", lambda *a: (opened.append(1), real_connect(*a))[1])
    for _ in range(3):
        assert fetch(picture_server.url("/k.jpg")).content == stock_red_jpeg
    assert len(opened) == 1 and len(picture_server.requests("/k.jpg")) == 3
    settings.SPOTCHECK_FETCH_ALLOW = []  # the picture server is no longer allowed
    with pytest.raises(FetchFailed) as failure:
        fetch(picture_server.url("/k.jpg"))
    assert failure.value.reason == FetchError.BLOCKED_ADDRESS
    assert len(picture_server.requests("/k.jpg")) == 3


def test_a_server_that_closed_a_kept_alive_connection_gets_a_new_one(picture_server, allow_loopback, stock_red_jpeg):
    picture_server.serve("/s.jpg", stock_red_jpeg)
    assert fetch(picture_server.url("/s.jpg")).content == stock_red_jpeg
    import socket

    key = ("http", "127.0.0.1", picture_server.httpd.server_address[1])
    for conn, _address, _since in fetch_module._idle._idle[key]:
        conn.sock.shutdown(socket.SHUT_RDWR)  # as an idle timeout on the server would
    assert fetch(picture_server.url("/s.jpg")).content == stock_red_jpeg


@pytest.mark.parametrize(("header", "expected"), [("7", 7.0), ("100000", 300.0), (None, None)])
def test_a_429_carries_the_servers_retry_after_capped(picture_server, allow_loopback, header, expected):
    picture_server.routes["/busy"] = lambda _h: Reply(429, b"slow down", {"Retry-After": header} if header else {})
    with pytest.raises(FetchFailed) as failure:
        fetch(picture_server.url("/busy"))
    assert failure.value.transient and failure.value.retry_after == expected
