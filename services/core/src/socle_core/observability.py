"""Correlation ids and access logs for every request.

The correlation id comes from the caller's ``X-Request-ID`` when it is a sane token (so a
gateway's id follows the request through every service), otherwise a new one; it is bound
to every log line of the request and returned in the response.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import structlog
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "x-request-id"
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
REQUEST_ID_SCOPE_KEY = "socle.request_id"
access_log = structlog.get_logger("socle.access")


def _status_of(exc: Exception) -> int:
    status = getattr(exc, "status", None) or getattr(exc, "status_code", None)
    return status if isinstance(status, int) else 500


def correlation_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        request_id = incoming if _VALID_ID.match(incoming) else uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status: dict[str, Any] = {"code": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                headers = [h for h in message.get("headers", []) if h[0].lower() != REQUEST_ID_HEADER.encode()]
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        scope[REQUEST_ID_SCOPE_KEY] = request_id  # type: ignore[literal-required]
        try:
            await app(scope, receive, send_with_id)
        except Exception as exc:
            # Raised by a middleware (e.g. authentication): the app-level handler answers it
            # after this middleware, so record the status it will send (and it adds the id).
            status["code"] = _status_of(exc)
            raise
        finally:
            path = scope.get("path", "")
            if not path.startswith(("/health/", "/metrics")):
                access_log.info(
                    "request",
                    method=scope.get("method"),
                    path=path,
                    status=status["code"],
                    duration_ms=round((time.perf_counter() - started) * 1000, 2),
                )
            structlog.contextvars.clear_contextvars()

    return middleware
