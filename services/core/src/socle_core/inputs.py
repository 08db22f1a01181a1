"""What a request must be before any handler reads it: text that decodes, parameters the route declares.

PostgreSQL refuses a NUL character in text, asyncpg cannot encode an unpaired surrogate,
Python's JSON decoder overflows its stack on a document nested a thousand levels deep and
Litestar decodes a JSON body whatever its ``Content-Type`` says: each of these became a 500,
or let a body reach a handler without passing the tenant guard. So, for every route, before
the handler and the tenant guard:

- the path and the query string must decode as strict UTF-8 and hold no NUL character;
- the query may only name parameters the route declares (its handler's and its
  dependencies'); a misspelt or unexpected one, such as ``?tenant_id=``, is refused rather than
  silently ignored. A handler may list extra names it accepts and ignores (an OAuth callback's
  ``session_state``) in ``opt={"ignored_query_params": (...)}``;
- a body is read only by a route that takes one, and must be of the media type that route
  reads (JSON, or a form), else 415; a JSON body must be strict UTF-8, nested at most
  ``MAX_JSON_DEPTH`` levels, and carry no NUL or unpaired surrogate in any string or key.

Undecodable input is a 400 ``bad-request``, an unacceptable value a 422 ``validation-error``;
both name the offending field in ``errors``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from litestar import Request
from litestar.enums import RequestEncodingType, ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Receive, Scope, Send

from socle_core.errors import BadRequest, InvalidInput, UnsupportedMediaType

#: Deepest nesting of arrays and objects a JSON body may have; Socle's own schemas need fewer than 10.
MAX_JSON_DEPTH = 32
#: Bound of every integer parameter or field a service stores or passes on: PostgreSQL's ``integer``
#: and Java's ``int`` (Keycloak's ``first``, ``max``) end there, and past it the answer was a 500 or 502.
MAX_INT32 = 2**31 - 1
#: Handler ``opt`` key: query parameters the handler accepts without declaring them.
IGNORED_QUERY_PARAMS = "ignored_query_params"

_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_EMPTY_PAIR = re.compile(rb"\[\]|\{\}")
#: An escape that may decode to NUL or to half of a surrogate pair (then the decoded strings are looked at).
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")
_BAD_CHARACTER = re.compile("[\x00\ud800-\udfff]")
_FORM_TYPES = {
    RequestEncodingType.URL_ENCODED: "application/x-www-form-urlencoded",
    RequestEncodingType.MULTI_PART: "multipart/form-data",
}


@dataclass(frozen=True)
class _Inputs:
    """What one route handler reads: the query parameter names, and the media type of its body if it takes one."""

    query: frozenset[str]
    body: str | None


def _error(location: str, name: str, detail: str) -> dict[str, str]:
    return {"location": location, "field": f"{location}.{name}" if name else location, "detail": detail}


def _what_is_wrong(text: str) -> str | None:
    found = _BAD_CHARACTER.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "contient un caractère NUL (U+0000), refusé"
    return "contient une moitié de paire de substitution UTF-16 isolée, refusée"


_WHERE = {"query": "de la requête", "body": "du formulaire"}


def _decoded(raw: bytes, location: str, name: str) -> str:
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        what = f"le paramètre {name!r}" if name else "un nom de paramètre"
        raise BadRequest(
            f"{what} {_WHERE[location]} n'est pas du texte UTF-8 valide",
            errors=[_error(location, name, "n'est pas du texte UTF-8 valide")],
        ) from None


def check_path(scope: Scope) -> None:
    """The path decodes as strict UTF-8 without NUL; names the path parameter when it can."""
    raw = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
    try:
        problem = _what_is_wrong(unquote_to_bytes(raw).decode("utf-8"))
    except UnicodeDecodeError:
        problem = "n'est pas du texte UTF-8 valide"
    if problem is None:
        return
    params = scope.get("path_params") or {}
    named = next(
        (n for n, v in params.items() if isinstance(v, str) and ("\ufffd" in v or _what_is_wrong(v))),
        "",
    )
    raise BadRequest(f"le chemin {problem}", errors=[_error("path", named, problem)])


def check_pairs(raw: bytes, location: str, declared: frozenset[str] | None) -> None:
    """A query string or URL-encoded form: every name and value decodes, none holds NUL; names are declared."""
    unknown: list[str] = []
    for piece in raw.split(b"&"):
        if not piece:
            continue
        raw_name, _, raw_value = piece.partition(b"=")
        name = _decoded(raw_name.replace(b"+", b" "), location, "")
        value = _decoded(raw_value.replace(b"+", b" "), location, name)
        for text in (name, value):
            if (problem := _what_is_wrong(text)) is not None:
                raise BadRequest(
                    f"le paramètre {name!r} {_WHERE[location]} {problem}", errors=[_error(location, name, problem)]
                )
        if declared is not None and name not in declared and name not in unknown:
            unknown.append(name)
    if unknown:
        raise BadRequest(
            f"paramètre inconnu de cette route : {', '.join(unknown)}"
            + (f" (acceptés : {', '.join(sorted(declared))})" if declared else " (elle n'en accepte aucun)"),
            errors=[_error(location, name, "paramètre inconnu de cette route") for name in unknown],
        )


def json_too_deep(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when the document nests arrays and objects more than ``limit`` levels, found without decoding it.

    Strings are removed, then only brackets kept; each pass removes the innermost empty
    pairs, so one level. A malformed document is left to the JSON decoder to refuse.
    """
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    for _ in range(limit):
        brackets, removed = _EMPTY_PAIR.subn(b"", brackets)
        if not brackets or not removed:
            return False
    return True


def _bad_string(node: Any, path: str) -> tuple[str, str] | None:
    """The path and fault of the first key or string value holding NUL or an unpaired surrogate."""
    if isinstance(node, str):
        problem = _what_is_wrong(node)
        return (path, problem) if problem else None
    items: Any = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        child = f"{path}.{key}"
        if isinstance(key, str) and (problem := _what_is_wrong(key)):
            return child, f"nom de champ qui {problem}"
        if (found := _bad_string(value, child)) is not None:
            return found
    return None


def check_json(body: bytes) -> None:
    """Strict UTF-8, bounded depth, no NUL or unpaired surrogate; anything else is the decoder's to judge."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        detail = f"n'est pas du texte UTF-8 valide (octet {exc.start})"
        raise BadRequest(f"le corps JSON {detail}", errors=[_error("body", "", detail)]) from None
    if json_too_deep(body):
        detail = f"imbrique tableaux et objets sur plus de {MAX_JSON_DEPTH} niveaux"
        raise BadRequest(f"le corps JSON {detail}", errors=[_error("body", "", detail)])
    if not _SUSPECT_ESCAPE.search(body):
        return
    try:
        document = json.loads(body)
    except ValueError:
        return
    found = _bad_string(document, "body")
    if found is not None:
        path, problem = found
        raise InvalidInput(
            f"le champ {path.removeprefix('body.') or 'body'} {problem}",
            errors=[{"location": "body", "field": path, "detail": problem}],
        )


def _media_type(request: Request[Any, Any, Any]) -> str:
    return request.headers.get("content-type", "").partition(";")[0].strip().lower()


def check_body(request: Request[Any, Any, Any], body: bytes, expected: str) -> None:
    media_type = _media_type(request)
    if expected == "json":
        if media_type != "application/json" and not media_type.endswith("+json"):
            sent = media_type or "un corps sans type"
            raise UnsupportedMediaType(f"cette route lit un corps JSON (Content-Type: application/json), pas {sent}")
        check_json(body)
    elif media_type != expected:
        raise UnsupportedMediaType(
            f"cette route lit un formulaire {expected}, pas {media_type or 'un corps sans type'}"
        )
    elif expected == _FORM_TYPES[RequestEncodingType.URL_ENCODED]:
        check_pairs(body, "body", None)


def _inputs_of(app: Any) -> dict[int, _Inputs]:
    """Every HTTP route handler of the app → what it reads, from Litestar's own parameter model."""
    found: dict[int, _Inputs] = {}
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler, model in route.route_handler_map.values():
            query = {p.field_alias for p in model.expected_query_params}
            query.update(handler.opt.get(IGNORED_QUERY_PARAMS, ()))
            body: str | None = None
            if model.expected_form_data is not None:
                body = _FORM_TYPES.get(RequestEncodingType(model.expected_form_data[0]))
            elif "data" in model.expected_reserved_kwargs:
                body = "json"
            found[id(handler)] = _Inputs(frozenset(query), body)
    return found


class RequestInputMiddleware(ASGIMiddleware):
    """Checks path, query and body of every request against what its route reads (see the module's docstring)."""

    scopes = (ScopeType.HTTP,)

    def __init__(self) -> None:
        self._inputs: dict[int, _Inputs] | None = None

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if self._inputs is None:
            self._inputs = _inputs_of(scope["litestar_app"])
        inputs = self._inputs.get(id(scope["route_handler"]))
        check_path(scope)
        check_pairs(scope.get("query_string", b""), "query", inputs.query if inputs else None)
        if inputs is not None and inputs.body is not None:
            request: Request[Any, Any, Any] = Request(scope, receive)
            body = await request.body()
            if body:
                check_body(request, body, inputs.body)
        await next_app(scope, receive, send)


def request_input_middleware() -> RequestInputMiddleware:
    return RequestInputMiddleware()
