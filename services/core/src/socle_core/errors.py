"""One error envelope for every service: RFC 9457 problem details.

Domain code raises a ``Problem`` subclass (or Litestar's HTTP exceptions); the handlers
registered by ``socle_core.app`` turn every error into ``application/problem+json`` with a
stable ``type``, a human ``title``, a ``detail`` saying what is wrong, and for validation
errors the list of offending fields with their location.

A database constraint the request breaks (``IntegrityError``, raised by a flush or by the
request's commit) is mapped here once, from PostgreSQL's diagnostic: a duplicate is a 409
naming the field, a missing reference, a missing value or a failed check a 422; a service
gives friendlier words per constraint name with ``ConstraintMessage`` (``constraints=`` of
``create_service_app``). Services never catch ``IntegrityError`` to say the same thing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import structlog
from asyncpg.exceptions import PostgresError
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.exceptions.http_exceptions import NotAuthorizedException
from litestar.openapi.datastructures import ResponseSpec
from sqlalchemy.exc import IntegrityError

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:socle:problem:"

log = structlog.get_logger("socle.errors")

#: Members every problem body has; an extension may not reuse their names.
RESERVED_MEMBERS = frozenset({"type", "title", "status", "detail", "instance", "errors"})


class Problem(Exception):
    """A domain error with its HTTP status and a stable problem type."""

    status: int = 400
    slug: str = "bad-request"
    title: str = "Requête illisible"

    def __init__(
        self,
        detail: str,
        *,
        errors: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        reserved = RESERVED_MEMBERS & extensions.keys()
        if reserved:  # an extension would overwrite the RFC 9457 members and break the envelope
            raise TypeError(f"problem extensions may not be named {sorted(reserved)}")
        super().__init__(detail)
        self.detail = detail
        self.errors = list(errors or [])
        self.headers = dict(headers or {})
        self.extensions = extensions


class BadRequest(Problem):
    """A request the service cannot read at all (undecodable, unknown parameter), before any validation."""


class UnsupportedMediaType(Problem):
    status, slug, title = 415, "unsupported-media-type", "Type de contenu non accepté"


class NotFound(Problem):
    """Also what a caller gets for another tenant's resource: it does not exist for them."""

    status, slug, title = 404, "not-found", "Ressource introuvable"


class Conflict(Problem):
    status, slug, title = 409, "conflict", "Conflit"


class Forbidden(Problem):
    status, slug, title = 403, "forbidden", "Accès refusé"


class Unauthenticated(Problem):
    status, slug, title = 401, "unauthenticated", "Authentification requise"

    def __init__(self, detail: str, **kwargs: Any) -> None:
        headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        headers.update(kwargs.pop("headers", None) or {})
        super().__init__(detail, headers=headers, **kwargs)


class InvalidInput(Problem):
    status, slug, title = 422, "validation-error", "Saisie invalide"


class ServiceUnavailable(Problem):
    status, slug, title = 503, "service-unavailable", "Service indisponible"


_HTTP_SLUGS = {
    400: "bad-request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation-error",
    429: "too-many-requests",
    500: "internal-error",
    503: "service-unavailable",
}

#: French title of each status, and the detail given when Litestar says no more than the status phrase.
_HTTP_TEXTS = {
    400: ("Requête illisible", "la requête ne peut pas être lue"),
    401: ("Authentification requise", "un jeton d'accès valide est requis"),
    403: ("Accès refusé", "vos rôles ou votre collectivité ne permettent pas cette opération"),
    404: ("Ressource introuvable", "aucune ressource à cette adresse"),
    405: ("Méthode non acceptée", "cette adresse n'accepte pas cette méthode HTTP"),
    409: ("Conflit", "la requête contredit l'état actuel de la ressource"),
    413: ("Corps trop volumineux", "le corps de la requête dépasse la taille acceptée"),
    415: ("Type de contenu non accepté", "cette adresse ne lit pas ce type de contenu"),
    422: ("Saisie invalide", "un champ est invalide"),
    429: ("Trop de requêtes", "trop de requêtes en peu de temps : réessayez dans un instant"),
    500: ("Erreur interne", "une erreur inattendue s'est produite"),
    503: ("Service indisponible", "le service est momentanément indisponible : réessayez dans un instant"),
}

#: Validation messages of pydantic and msgspec, as French; ``{0}``… are the pattern's groups.
_VALIDATION_TEXTS = [
    (r"Field required", "champ obligatoire"),
    (r"Object missing required field `(.+)`", "champ « {0} » obligatoire"),
    (r"Extra inputs are not permitted", "champ inconnu"),
    (r"Object contains unknown field `(.+)`", "champ « {0} » inconnu"),
    (r"String should have at least (\d+) characters?", "au moins {0} caractère(s)"),
    (r"String should have at most (\d+) characters?", "au plus {0} caractère(s)"),
    (r"Expected `str` of length >= (\d+)", "au moins {0} caractère(s)"),
    (r"Expected `str` of length <= (\d+)", "au plus {0} caractère(s)"),
    (r"String should match pattern '(.*)'|Expected `str` matching regex '(.*)'", "ne suit pas le format attendu"),
    (r"Input should be greater than or equal to (.+)|Expected `\w+` >= (.+)", "doit valoir au moins {0}"),
    (r"Input should be less than or equal to (.+)|Expected `\w+` <= (.+)", "doit valoir au plus {0}"),
    (r"Input should be greater than (.+)|Expected `\w+` > (.+)", "doit être supérieur à {0}"),
    (r"Input should be less than (.+)|Expected `\w+` < (.+)", "doit être inférieur à {0}"),
    (r"List should have at least (\d+) items?.*", "au moins {0} élément(s)"),
    (r"List should have at most (\d+) items?.*", "au plus {0} élément(s)"),
    (r"Input should be a valid integer.*|Expected `int`, got `\w+`", "doit être un nombre entier"),
    (r"Input should be a valid number.*|Expected `float`, got `\w+`", "doit être un nombre"),
    (r"Input should be a valid boolean.*|Expected `bool`, got `\w+`", "doit être true ou false"),
    (r"Input should be a valid string|Expected `str`, got `\w+`", "doit être une chaîne de caractères"),
    (r"Input should be a valid list|Expected `array`, got `\w+`", "doit être une liste"),
    (r"Input should be a valid dictionary.*|Expected `object`, got `\w+`", "doit être un objet JSON"),
    (r"Input should be a valid UUID.*|Invalid UUID.*", "doit être un UUID"),
    (
        r"Input should be a valid datetime.*|Invalid RFC3339 encoded datetime|Expected `datetime`.*",
        "doit être une date et heure ISO 8601 (ex. 2026-01-31T12:00:00Z)",
    ),
    (
        r"Input should be a valid date.*|Invalid RFC3339 encoded date|Expected `date`.*",
        "doit être une date ISO 8601 (ex. 2026-01-31)",
    ),
    (r"Input should be (?:'[^']*'(?:, | or )?)+|Invalid enum value .*", "n'est pas une des valeurs acceptées"),
    (r"value is not a valid email address: .*", "n'est pas une adresse électronique valide"),
    (r"URL should have at most (\d+) characters?", "au plus {0} caractère(s)"),
    (r"Input should be a valid URL.*", "n'est pas une URL valide"),
]


def _french_validation(message: str) -> str:
    """A validator's message in French: ours are already (``Value error, …``), the libraries' are mapped."""
    if message.startswith("Value error, "):
        return message.removeprefix("Value error, ")
    for pattern, text in _VALIDATION_TEXTS:
        match = re.fullmatch(pattern, message)
        if match:
            return text.format(*(group for group in match.groups() if group is not None))
    return f"valeur invalide ({message})"


def problem_body(
    status: int,
    slug: str,
    title: str,
    detail: str,
    instance: str | None,
    errors: Sequence[Mapping[str, Any]] = (),
    **extensions: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if errors:
        body["errors"] = [dict(e) for e in errors]
    body.update(extensions)
    return body


def problem_response(
    request: Request[Any, Any, Any] | None,
    status: int,
    slug: str,
    title: str,
    detail: str,
    errors: Sequence[Mapping[str, Any]] = (),
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> Response[dict[str, Any]]:
    instance = request.url.path if request is not None else None
    response_headers = dict(headers or {})
    request_id = request.scope.get("socle.request_id") if request is not None else None
    if isinstance(request_id, str):  # errors raised before the correlation middleware could add it
        response_headers.setdefault("X-Request-ID", request_id)
    return Response(
        content=problem_body(status, slug, title, detail, instance, errors, **extensions),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=response_headers,
    )


def _validation_errors(extra: Any) -> list[dict[str, Any]]:
    """Litestar's validation details as ``{"location", "field", "detail"}`` items."""
    items: list[dict[str, Any]] = []
    for item in extra if isinstance(extra, list) else []:
        if not isinstance(item, Mapping):
            continue
        raw_source = item.get("source") or "body"
        source = str(getattr(raw_source, "value", raw_source))  # Litestar may give a ParamType enum
        key = item.get("key")
        items.append(
            {
                "location": source,
                "field": f"{source}.{key}" if key else source,
                "detail": _french_validation(str(item.get("message", ""))),
            }
        )
    return items


def handle_problem(request: Request[Any, Any, Any], exc: Problem) -> Response[dict[str, Any]]:
    return problem_response(
        request, exc.status, exc.slug, exc.title, exc.detail, exc.errors, exc.headers, **exc.extensions
    )


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    status = exc.status_code
    slug = _HTTP_SLUGS.get(status, "http-error")
    title, detail = _HTTP_TEXTS.get(status, ("Erreur", "la requête a échoué"))
    if str(exc.detail) not in (HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "", ""):
        detail = _litestar_detail(status, str(exc.detail))
    errors: list[dict[str, Any]] = []
    if isinstance(exc, ValidationException):
        errors = _validation_errors(exc.extra)
        slug, status = "validation-error", 422 if status == 400 else status
        title, detail = _HTTP_TEXTS[422][0], _validation_detail(errors)
    headers = dict(exc.headers or {})
    if isinstance(exc, NotAuthorizedException):
        headers.setdefault("WWW-Authenticate", 'Bearer error="invalid_token"')
    return problem_response(request, status, slug, title, detail, errors, headers)


def _validation_detail(errors: Sequence[Mapping[str, Any]]) -> str:
    fields = [str(error["field"]) for error in errors]
    if len(fields) > 1:
        return f"la requête a {len(fields)} champs invalides : {', '.join(fields)}"
    return f"la requête a un champ invalide : {fields[0]}" if fields else _HTTP_TEXTS[422][1]


def _litestar_detail(status: int, detail: str) -> str:
    """Litestar's own English details (an undecodable body, a missing header) said in French."""
    if status == 400 and (detail.startswith("JSON is malformed") or detail == "Input data was truncated"):
        return "le corps JSON est mal formé"
    missing = re.fullmatch(r"Missing required (\w+) parameter '(.+)' for .*", detail)
    if missing:
        return f"le paramètre {missing.group(2)!r} ({missing.group(1)}) est obligatoire"
    if re.search(r"\b(the|is|not|for|was|no)\b", detail):
        return _HTTP_TEXTS.get(status, ("", "la requête a échoué"))[1]
    return detail  # a detail our own code gave (already French)


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """Never leak internals: log the exception with the correlation id, answer a plain 500."""
    log.exception("unhandled_error", path=request.url.path, error_type=type(exc).__name__)
    return problem_response(
        request,
        500,
        "internal-error",
        "Erreur interne",
        "une erreur inattendue s'est produite ; elle est consignée avec l'identifiant de corrélation de cette "
        "requête (en-tête X-Request-ID)",
    )


@dataclass(frozen=True)
class ConstraintMessage:
    """What a service tells its callers when a request breaks one of its named constraints.

    ``field`` is the body member at fault (``tenant_key``), ``None`` for a rule on several;
    ``status`` overrides the default (409 for a duplicate, 422 otherwise).
    """

    detail: str
    field: str | None = None
    status: int | None = None


#: ``Key (tenant_id, external_id)=(...)``: the columns PostgreSQL names in a violation's detail.
_KEY_COLUMNS = re.compile(r"^Key \(([\w\s,]+)\)=")
#: Columns a caller never sends in a body: set from the token or by the database.
_IMPLICIT_COLUMNS = frozenset({"tenant_id"})
_UNIQUE, _FOREIGN_KEY, _NOT_NULL, _CHECK, _EXCLUSION = "23505", "23503", "23502", "23514", "23P01"


def _diagnostic(exc: IntegrityError) -> PostgresError | None:
    """asyncpg's error behind SQLAlchemy's wrapper: it carries the constraint, column and detail."""
    for candidate in (exc.orig, getattr(exc.orig, "__cause__", None)):
        if isinstance(candidate, PostgresError):
            return candidate
    return None


def _columns(pg: PostgresError | None) -> list[str]:
    column = getattr(pg, "column_name", None)
    if column:
        return [str(column)]
    found = _KEY_COLUMNS.match(str(getattr(pg, "detail", None) or ""))
    columns = [c.strip() for c in found.group(1).split(",")] if found else []
    return [c for c in columns if c not in _IMPLICIT_COLUMNS] or columns


def integrity_problem(
    exc: IntegrityError, constraints: Mapping[str, ConstraintMessage] | None = None
) -> Conflict | InvalidInput:
    """The problem a constraint violation is for the caller; the values themselves are never echoed."""
    pg = _diagnostic(exc)
    sqlstate = str(getattr(pg, "sqlstate", None) or getattr(exc.orig, "sqlstate", None) or "")
    constraint = str(getattr(pg, "constraint_name", None) or "")
    columns = _columns(pg)
    names = ", ".join(columns) or constraint or "la requête"
    referenced = "still referenced" in str(getattr(pg, "detail", None) or "")
    if sqlstate == _UNIQUE:
        status, detail = 409, f"une ressource a déjà cette valeur de {names} : choisissez-en une autre"
    elif sqlstate == _FOREIGN_KEY and referenced:
        status, detail = 409, "cette ressource est encore référencée par d'autres données : retirez-les d'abord"
        columns = []
    elif sqlstate == _FOREIGN_KEY:
        status, detail = 422, f"{names} ne désigne aucune ressource existante"
    elif sqlstate == _NOT_NULL:
        status, detail = 422, f"{names} est obligatoire"
    elif sqlstate == _EXCLUSION:
        status, detail = 409, f"{names} chevauche une ressource existante"
    else:
        status, detail = 422, f"la requête ne respecte pas la règle {constraint or sqlstate}"
    message = (constraints or {}).get(constraint)
    if message is not None:
        detail, status = message.detail, message.status or status
        columns = [message.field] if message.field else []
    log.info(
        "constraint_violated",
        sqlstate=sqlstate,
        constraint=constraint or None,
        table=getattr(pg, "table_name", None),
        columns=columns,
    )
    errors = [{"location": "body", "field": f"body.{c}", "detail": detail} for c in columns] or [
        {"location": "body", "field": "body", "detail": detail}
    ]
    extensions: dict[str, Any] = {"constraint": constraint} if constraint else {}
    problem = Conflict if status == 409 else InvalidInput
    return problem(detail, errors=errors, **extensions)


def handle_integrity_error(request: Request[Any, Any, Any], exc: IntegrityError) -> Response[dict[str, Any]]:
    """A broken constraint, from a flush or from the request's commit (already rolled back by then)."""
    constraints = getattr(request.app.state, "constraints", None)
    return handle_problem(request, integrity_problem(exc, constraints))


@dataclass
class ProblemField:
    """One offending field: ``location`` body, query, path or header; ``field`` its path (``query.offset``)."""

    location: str
    field: str
    detail: str


@dataclass
class ProblemDetails:
    """An RFC 9457 problem: the shape of every error answer of every Socle service."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[ProblemField] | None = None


#: The problem answers any route may give, documented on every operation of the OpenAPI document.
DOCUMENTED_PROBLEMS = {
    400: "The request cannot be read: undecodable text, a NUL character, JSON nested too deep, an unknown query "
    "parameter",
    401: "No valid access token",
    403: "The token's roles or tenant do not allow this",
    404: "No such resource, or one of another tenant",
    409: "The request conflicts with the resource's current state",
    413: "The body is too large",
    415: "The body's content type is not the one this operation reads",
    422: "A field is invalid (each one is listed in errors)",
}


def problem_response_specs() -> dict[int, ResponseSpec]:
    return {
        status: ResponseSpec(
            data_container=ProblemDetails, description=description, media_type=PROBLEM_JSON, generate_examples=False
        )
        for status, description in DOCUMENTED_PROBLEMS.items()
    }


exception_handlers: dict[type[Exception] | int, Any] = {
    Problem: handle_problem,
    IntegrityError: handle_integrity_error,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}

__all__ = [
    "DOCUMENTED_PROBLEMS",
    "PROBLEM_JSON",
    "BadRequest",
    "Conflict",
    "ConstraintMessage",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "Problem",
    "ProblemDetails",
    "ServiceUnavailable",
    "Unauthenticated",
    "UnsupportedMediaType",
    "exception_handlers",
    "integrity_problem",
    "problem_response",
]
