"""The services' HTTP server refuses oversized headers and closes slow connections, over raw sockets.

Served the way the devstack and the image serve them (``socle_core.server``): a 64 MB
header is refused with 431 before it is read in full, and a connection that sends its
headers or its body one byte at a time (slowloris) is closed once the header or body read
time is spent, while a normal request with a large body still passes.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from socle_core.server import BODY_TIMEOUT_SECONDS, HEADER_TIMEOUT_SECONDS, MAX_HEADER_BYTES
from tests.isolation.servers import served_services


@pytest.fixture(scope="module")
def address(database, keycloak, credentials) -> Iterator[tuple[str, int]]:
    with served_services(database, keycloak, credentials, ("identity",)) as urls:
        parts = urlsplit(urls["identity"])
        yield parts.hostname or "127.0.0.1", parts.port or 80


def connect(address: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(address, timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_answer(sock: socket.socket, timeout: float = 10) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            return data
        if not chunk:
            return data
        data += chunk


def closed_after(sock: socket.socket, drip: bytes, limit: float) -> float | None:
    """Send ``drip`` one byte a second until the server closes; seconds until then, None if still open at ``limit``."""
    started = time.monotonic()
    sock.settimeout(1)
    for byte in (drip[i : i + 1] for i in range(len(drip))):
        if time.monotonic() - started > limit:
            return None
        try:
            sock.sendall(byte)
            if sock.recv(65536) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - started
    return None


def test_a_64_mb_header_is_refused_with_431_without_being_read(address) -> None:
    """The answer comes while the client is still sending: after the limit, not after 64 MB."""
    sock = connect(address)
    progress = {"sent": 0}

    def send_64_mb() -> None:
        chunk = b"a" * 65536
        try:
            sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: socle\r\nX-Big: ")
            while progress["sent"] < 64 * 1024 * 1024:
                sock.sendall(chunk)
                progress["sent"] += len(chunk)
        except OSError:  # the server closed the connection
            pass

    sender = threading.Thread(target=send_64_mb)
    started = time.monotonic()
    sender.start()
    sock.settimeout(10)
    first = sock.recv(65536)
    sent_when_answered = progress["sent"]
    answer = first + read_answer(sock, timeout=5)
    closed_within = time.monotonic() - started
    sender.join(30)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in head.lower()
    problem = json.loads(body)
    assert problem["status"] == 431
    assert problem["type"] == "urn:socle:problem:request-header-fields-too-large"
    assert sent_when_answered < 16 * 1024 * 1024, f"answered only after {sent_when_answered} bytes of headers"
    assert closed_within < 10


def test_headers_within_the_limit_pass(address) -> None:
    sock = connect(address)
    filler = b"b" * (MAX_HEADER_BYTES - 1024)
    sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: socle\r\nX-Filler: " + filler + b"\r\nConnection: close\r\n\r\n")
    answer = read_answer(sock)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]


def test_a_large_body_sent_at_once_is_not_taken_for_headers(address) -> None:
    body = json.dumps({"name": "x" * 500_000, "access": "read"}).encode()
    sock = connect(address)
    request = (
        b"POST /v1/service-accounts HTTP/1.1\r\nHost: socle\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body
    )
    sock.sendall(request)
    answer = read_answer(sock)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]  # read whole, answered by the app


@pytest.mark.timeout(180)
def test_slowloris_connections_are_closed_after_the_read_times(address) -> None:
    """Headers, then a body, one byte a second: each connection is closed when its read time is spent."""
    results: dict[str, float | None] = {}
    idle = connect(address)  # connected, sends nothing

    def drip_headers() -> None:
        sock = connect(address)
        results["headers"] = closed_after(
            sock, b"GET /health/live HTTP/1.1\r\nHost: socle\r\nX-Slow: " + b"z" * 200, 60
        )
        sock.close()

    def drip_body() -> None:
        sock = connect(address)
        sock.sendall(
            b"POST /v1/service-accounts HTTP/1.1\r\nHost: socle\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer x.y.z\r\nContent-Length: 1000\r\n\r\n"
        )
        results["body"] = closed_after(sock, b"{" + b" " * 998 + b"}", 90)
        sock.close()

    threads = [threading.Thread(target=drip_headers), threading.Thread(target=drip_body)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    idle.settimeout(HEADER_TIMEOUT_SECONDS + 10)
    with contextlib.suppress(ConnectionResetError):
        assert idle.recv(1) == b""
    results["idle"] = time.monotonic() - started
    idle.close()
    for thread in threads:
        thread.join(120)
    assert results["idle"] < HEADER_TIMEOUT_SECONDS + 3, results
    assert results["headers"] is not None, "a connection dripping its headers was still open after 60 s"
    assert HEADER_TIMEOUT_SECONDS - 1 < results["headers"] < HEADER_TIMEOUT_SECONDS + 3, results
    # The body's time starts once the headers are in: the app answers 401 without reading the
    # body, and the connection is closed when the body's read time is spent.
    assert results["body"] is not None, "a connection dripping its body was still open after 90 s"
    assert results["body"] < BODY_TIMEOUT_SECONDS + 3, results
