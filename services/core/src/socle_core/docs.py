"""The API documentation: what the OpenAPI document says besides Litestar's defaults, and its page.

Every operation lists the problem answers any route may give (``DOCUMENTED_PROBLEMS``, with
the problem+json schema), and a handler that answers another media type as well (a report
as JSON or printable HTML) names it in ``opt={OTHER_MEDIA_TYPES: {status: (media type, ...)}}``:
so a client, or schemathesis, finds every status and content type in the document.

The page at ``/schema`` is Redoc served by the service itself, never from a CDN. Litestar's
documentation pages load their scripts, fonts and favicon from public CDNs, so ``/schema``
was blank on a network without internet access and each visit told a third party who reads
the documentation. The Redoc bundle is vendored in ``docs_assets/`` (npm
package ``redoc`` 2.5.4, ``bundles/redoc.standalone.js``, MIT licence, notices beside it)
and served under ``/schema/assets/``; the page has no inline script, so its Content
Security Policy allows scripts from the service only (and refuses the Redocly logo Redoc's
menu would fetch from their CDN). The Swagger, Elements and RapiDoc pages are not served.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from litestar import Litestar, Request, Router, get
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Schema
from litestar.response import File
from litestar.routes import HTTPRoute

from socle_core.access import public
from socle_core.errors import problem_response_specs

#: Handler ``opt`` key: ``{status: (media type, ...)}`` the handler may answer besides the documented one.
OTHER_MEDIA_TYPES = "other_media_types"

ASSETS = Path(__file__).with_name("docs_assets")
REDOC_BUNDLE = "redoc.standalone.js"
#: Under the OpenAPI router's path (``/schema``).
ASSETS_PATH = "/assets"

#: Redoc injects its styles and runs its search index in a worker built from a blob.
DOCS_PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'"
)


class LocalRedocPlugin(OpenAPIRenderPlugin):
    """Redoc at ``/schema`` and ``/schema/redoc``, reading the document and its script from this service."""

    def __init__(self) -> None:
        super().__init__(path=["/", "/redoc"], favicon="")

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        root = request.scope.get("root_path", "")
        title = escape(str(openapi_schema["info"]["title"]))
        return (
            "<!DOCTYPE html><html lang='fr'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{title}</title></head><body>"
            f"<redoc spec-url='{escape(root + self.get_openapi_json_route(request))}'></redoc>"
            f"<script src='{escape(root + request.app.route_reverse(REDOC_BUNDLE))}'></script>"
            "</body></html>"
        ).encode()

    def receive_router(self, router: Router) -> None:
        router.register(redoc_bundle)


@get(
    f"{ASSETS_PATH}/{REDOC_BUNDLE}",
    name=REDOC_BUNDLE,
    include_in_schema=False,
    sync_to_thread=False,
    access=public("le code de la page de documentation"),
)
def redoc_bundle() -> File:
    """The vendored bundle; it changes only with a release, so browsers may keep it a day."""
    return File(
        ASSETS / REDOC_BUNDLE,
        filename=REDOC_BUNDLE,
        content_disposition_type="inline",
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=86400"},
    )


def document_answers(app: Litestar) -> None:
    """Every operation lists the problem answers (a handler's own entries win) and its other media types."""
    others = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            handler.responses = {**problem_response_specs(), **(handler.responses or {})}
            if handler.opt.get(OTHER_MEDIA_TYPES):
                others.append((route.path_format, handler))
    if not others:
        return
    paths = app.openapi_schema.paths or {}
    for path, handler in others:
        for method in handler.http_methods:
            operation = getattr(paths[path], method.lower())
            for status, media_types in handler.opt[OTHER_MEDIA_TYPES].items():
                content = operation.responses[str(status)].content
                for media_type in media_types:
                    content[media_type] = OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))
