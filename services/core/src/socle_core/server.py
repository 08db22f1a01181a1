"""The HTTP server every service runs in: uvicorn's httptools protocol, with limits it lacks.

Uvicorn parses a request's headers without any size limit (a 64 MB header was read in full
and handed to the app) and has no read timeout: a connection that sends its headers or body
one byte at a time (slowloris) stays open as long as it keeps sending. ``SocleHttpProtocol``
adds, per connection:

- a limit of ``MAX_HEADER_BYTES`` on the request line and headers, answered with 431 before
  the parser has buffered more; what the client still sends is discarded unread for
  ``LINGER_SECONDS`` (so it reads the answer rather than a reset), then the connection closes;
- ``HEADER_TIMEOUT_SECONDS`` to send them, from the connection's start or from the previous
  answer; ``BODY_TIMEOUT_SECONDS`` to send the body after them. A connection late on either
  is closed (the app, if it waits for the body, sees the client disconnect).

Idle keep-alive connections are closed by uvicorn's own ``timeout_keep_alive``. Behind the
chart's ingress the same limits are set on nginx (``helm/socle``); these hold for any other
way in. Every launcher uses it: ``uvicorn --http socle_core.server:SocleHttpProtocol``
(``UVICORN_ARGS``), the devstack, the container image and the test servers.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

#: Request line and headers together; an access token with many organizations stays far below.
MAX_HEADER_BYTES = 32 * 1024
HEADER_TIMEOUT_SECONDS = 10.0
BODY_TIMEOUT_SECONDS = 30.0
KEEP_ALIVE_SECONDS = 5
LINGER_SECONDS = 1.0

#: uvicorn's command-line options that select this protocol and its limits.
UVICORN_ARGS = ("--http", "socle_core.server:SocleHttpProtocol", "--timeout-keep-alive", str(KEEP_ALIVE_SECONDS))
#: The same for ``uvicorn.Config``.
UVICORN_OPTIONS: dict[str, Any] = {
    "http": "socle_core.server:SocleHttpProtocol",
    "timeout_keep_alive": KEEP_ALIVE_SECONDS,
}

_TOO_LARGE = json.dumps(
    {
        "type": "urn:socle:problem:request-header-fields-too-large",
        "title": "En-têtes de requête trop volumineux",
        "status": 431,
        "detail": f"la ligne de requête et les en-têtes dépassent {MAX_HEADER_BYTES} octets",
    }
).encode()


class SocleHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header size limit and header and body read timeouts."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_bytes = 0
        self._in_body = False
        self._refused = False
        self._deadline: asyncio.TimerHandle | None = None

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.logger.info("Closing a connection too slow to send its request (%s).", self.client)
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(HEADER_TIMEOUT_SECONDS)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Feed the parser no more header bytes than the limit allows; refuse when headers go past it."""
        while data and not self._refused and not self.transport.is_closing():
            if self._in_body:
                super().data_received(data)
                return
            room = MAX_HEADER_BYTES - self._header_bytes
            if room <= 0:
                self._refuse_too_large()
                return
            part, data = data[:room], data[room:]
            self._header_bytes += len(part)
            super().data_received(part)

    def _refuse_too_large(self) -> None:
        self.logger.warning("Request headers over %d bytes refused (%s).", MAX_HEADER_BYTES, self.client)
        head = [STATUS_LINE[431]]
        head.extend(name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers)
        head.append(b"content-type: application/problem+json\r\n")
        head.append(b"content-length: " + str(len(_TOO_LARGE)).encode() + b"\r\nconnection: close\r\n\r\n")
        self.transport.write(b"".join(head) + _TOO_LARGE)
        self._refused = True
        self._disarm()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def on_headers_complete(self) -> None:
        self._in_body = True
        self._arm(BODY_TIMEOUT_SECONDS)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_body = False
        self._header_bytes = 0
        self._disarm()
        if self.cycle.response_complete:  # answered before the body ended: now waiting for the next request
            self._arm(HEADER_TIMEOUT_SECONDS)
        super().on_message_complete()

    def on_response_complete(self) -> None:
        waiting = not self.pipeline and not self._in_body
        super().on_response_complete()
        if waiting and not self.transport.is_closing():
            self._arm(HEADER_TIMEOUT_SECONDS)
