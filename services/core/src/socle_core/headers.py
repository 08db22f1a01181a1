"""Security headers on every answer of every service, errors and 404s included.

Set in a ``before_send`` hook, which Litestar runs for every response message after every
middleware and exception handler: ``nosniff`` so a browser never runs a JSON answer as a
script; a Content Security Policy on every answer (none may load anything for a JSON
answer, an HTML page only from its own service, the documentation page what Redoc needs);
``Cache-Control: no-store`` so no browser or proxy keeps an answer carrying a tenant's
data. A handler that sets its own ``Cache-Control`` or policy keeps it (the documentation's
script is cacheable, the console's pages set theirs).
"""

from __future__ import annotations

from litestar.datastructures import MutableScopeHeaders
from litestar.types import BeforeMessageSendHookHandler, Message, Scope

from socle_core.docs import DOCS_PAGE_CSP

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
PAGE_CSP = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'"


def security_headers(openapi_path: str) -> BeforeMessageSendHookHandler:
    async def before_send(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        headers = MutableScopeHeaders.from_message(message)
        headers["X-Content-Type-Options"] = "nosniff"
        if "cache-control" not in headers:
            headers["Cache-Control"] = "no-store"
        if "content-security-policy" not in headers:
            html = (headers.get("content-type") or "").startswith("text/html")
            if html and str(scope.get("path", "")).startswith(openapi_path):
                headers["Content-Security-Policy"] = DOCS_PAGE_CSP
            else:
                headers["Content-Security-Policy"] = PAGE_CSP if html else API_CSP

    return before_send
