"""User-facing messages are French: the agents and elected officials of the communes read them.

Two checks. The sources: every problem a service raises with a literal message (a string or
an f-string) and every problem title is read as text. The running services: real requests that
provoke 400, 401, 404, 405, 409, 415 and 422 answers of every app, whose ``title``, ``detail``
and field details are read the same way. Machine parts stay English and are left out of the
reading: problem types, field names, codes, placeholders, quoted values.
"""

from __future__ import annotations

import ast
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.core.test_app import assert_problem
from tests.isolation.servers import bearer, served_services
from tests.support.keycloak_admin import create_commune

ROOT = Path(__file__).resolve().parents[2]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: Words of English sentences that no French message uses.
ENGLISH = _words(
    "the is are was were no not this that these of to for with must cannot can has have had already only "
    "found invalid unknown refused expected should does did your you it its be by been failed missing "
    "required allowed please give set there which when while conflict forbidden request requests error "
    "input unavailable authentication bad internal login unsupported media large too many header fields"
)
#: Words and letters only French sentences have.
FRENCH = _words(
    "le la les un une des du de d l aucun aucune pas est sont doit ce cette ces vous votre vos ne n et "
    "ou pour avec sans dans sur qu que qui il elle son sa ses au aux"
)
_ACCENTS = re.compile(r"[àâçéèêëîïôûùüœ]", re.IGNORECASE)
#: What is not prose: placeholders, quoted values, identifiers (snake_case, kebab-case, dotted,
#: SHOUTING), URLs and paths, numbers.
_NOT_PROSE = re.compile(r"\{[^}]*\}|'[^']*'|«[^»]*»|`[^`]*`|\S*[_/.=<>:@\d-]\S*[\w>]|\b[A-Z][A-Z0-9]+\b|https?://\S+")


def english_words(text: str) -> set[str]:
    """The English words of a message's prose; empty for French (or for text with no prose)."""
    words = re.findall(r"[^\W\d_]+", _NOT_PROSE.sub(" ", text))
    return {w.lower() for w in words} & ENGLISH


def is_french(text: str) -> bool:
    """No English word, and a French one or an accent: a title of two or three words may have neither."""
    words = [w.lower() for w in re.findall(r"[^\W\d_]+", _NOT_PROSE.sub(" ", text))]
    return not english_words(text) and bool(_ACCENTS.search(text) or set(words) & FRENCH or len(words) <= 3)


def test_the_reader_tells_french_from_english() -> None:
    """The reader itself: what it must refuse and what it must accept."""
    for english in (
        "no commune {alias!r} in this console",
        "Not Found",
        "Validation failed for POST /v1/epcis",
        "the identity provider refused the login: {error}",
        "Invalid input",
    ):
        assert not is_french(english), english
    for french in (
        "aucune commune « {alias} » dans cette console",
        "Ressource introuvable",
        "ce compte de service est révoqué : créez-en un nouveau",
        "indiquez au moins un de max_devices, max_readings_per_day, storage_gb",
        "la requête a un champ invalide : body.siren",
        "Conflit",
    ):
        assert is_french(french), french


# -- the sources -------------------------------------------------------------------------

#: The core's problem classes; the services' own are found by their bases.
CORE_PROBLEMS = {
    "Problem",
    "BadRequest",
    "UnsupportedMediaType",
    "NotFound",
    "Conflict",
    "Forbidden",
    "Unauthenticated",
    "InvalidInput",
    "ServiceUnavailable",
}


def _sources() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(encoding="utf-8"))) for path in sorted(ROOT.glob("services/*/src/**/*.py"))]


def _name(node: ast.expr) -> str:
    return node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""


def _problem_classes(sources: list[tuple[Path, ast.Module]]) -> dict[str, ast.ClassDef]:
    """Every class that derives from a problem class, by name, across all services."""
    classes = {n.name: n for _, tree in sources for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}
    problems = set(CORE_PROBLEMS)
    while True:
        more = {name for name, c in classes.items() if name not in problems and {_name(b) for b in c.bases} & problems}
        if not more:
            return {name: classes[name] for name in problems if name in classes}
        problems |= more


def _text(node: ast.expr) -> str | None:
    """A literal message: the string, or an f-string's literal parts with ``{}`` for each value."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)  # type: ignore[misc]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _text(node.left), _text(node.right)
        return None if left is None and right is None else f"{left or '{}'}{right or '{}'}"
    return None


def _messages() -> Iterator[tuple[str, str]]:
    sources = _sources()
    problems = _problem_classes(sources)
    for path, tree in sources:
        where = path.relative_to(ROOT)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _name(node.func) in problems and node.args:
                text = _text(node.args[0])
                if text is not None:
                    yield f"{where}:{node.lineno}", text
    for name, cls in problems.items():
        for statement in cls.body:
            if isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Tuple):
                targets = statement.targets[0]
                if isinstance(targets, ast.Tuple) and "title" in [_name(t) for t in targets.elts]:
                    index = [_name(t) for t in targets.elts].index("title")
                    text = _text(statement.value.elts[index])
                    if text is not None:
                        yield f"{name}.title", text
            elif isinstance(statement, ast.AnnAssign) and _name(statement.target) == "title" and statement.value:
                text = _text(statement.value)
                if text is not None:
                    yield f"{name}.title", text


def test_every_problem_a_service_raises_speaks_french() -> None:
    messages = list(_messages())
    assert len(messages) > 100  # the walk finds the raises (about 150 when this was written)
    english = [
        f"{where}: {text!r}"
        for where, text in messages
        if len(re.findall(r"[^\W\d_]{2,}", _NOT_PROSE.sub(" ", text))) >= 2 and not is_french(text)
    ]
    assert english == [], "\n".join(english)


# -- the running services ----------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(database, keycloak, credentials, kc_admin) -> Iterator[dict[str, Any]]:
    """Every app over HTTP, an operator and the admin of a commune."""
    commune = create_commune(kc_admin)
    services = ("tenancy", "identity", "billing", "console", "ingestion", "timeseries")
    overrides = {"console": {"oidc_client_secret": credentials["console_client"]}}
    with served_services(database, keycloak, credentials, services, overrides=overrides) as urls:
        yield {
            "urls": urls,
            "operator": bearer(kc_admin, ("operator",)),
            "admin": bearer(kc_admin, ("commune-admin",), (commune.alias, commune.tenant_id)),
            "commune": commune,
        }


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=60) as client:
        yield client


def assert_french(problem: dict[str, Any]) -> None:
    texts = [("title", problem["title"]), ("detail", problem["detail"])]
    texts += [(f"errors[{i}].detail", e["detail"]) for i, e in enumerate(problem.get("errors", []))]
    english = [f"{where}: {text!r}" for where, text in texts if not is_french(text)]
    assert english == [], f"{problem['instance']}: {english}"


@pytest.mark.parametrize("service", ["tenancy", "identity", "billing", "console", "ingestion", "timeseries"])
def test_the_framework_s_own_answers_are_french(stack, http, service) -> None:
    """No route, a method the route does not take, a body that is not JSON: Litestar's answers, in French."""
    base = stack["urls"][service]
    assert_french(assert_problem(http.get(f"{base}/nope"), 404, "not-found"))
    assert_french(assert_problem(http.delete(f"{base}/health/live"), 405, "method-not-allowed"))


def test_tenancy_answers_are_french(stack, http) -> None:
    base, operator = stack["urls"]["tenancy"], stack["operator"]
    answers = [
        (http.get(f"{base}/v1/tenants/commune-00000", headers=operator), 404, "not-found"),
        (http.post(f"{base}/v1/epcis", json={"siren": "732829320"}, headers=operator), 404, "not-found"),
        (http.post(f"{base}/v1/epcis", json={"siren": 7}, headers=operator), 422, "validation-error"),
        (http.post(f"{base}/v1/epcis", json={}, headers=operator), 422, "validation-error"),
        (http.get(f"{base}/v1/tenants?limit=0", headers=operator), 422, "validation-error"),
        (http.get(f"{base}/v1/tenants?tenant_id=x", headers=operator), 400, "bad-request"),
        (
            http.post(
                f"{base}/v1/epcis", content=b'{"siren": ', headers={**operator, "Content-Type": "application/json"}
            ),
            400,
            "bad-request",
        ),
        (
            http.post(f"{base}/v1/epcis", content=b"siren", headers={**operator, "Content-Type": "text/plain"}),
            415,
            "unsupported-media-type",
        ),
        (
            http.post(
                f"{base}/v1/tenants/{stack['commune'].tenant_id}/reactivate",
                json={"reason": "pour le test"},
                headers=operator,
            ),
            409,
            "conflict",
        ),
    ]
    for response, status, slug in answers:
        assert_french(assert_problem(response, status, slug))


def test_identity_answers_are_french(stack, http) -> None:
    base, admin = stack["urls"]["identity"], stack["admin"]
    unknown = assert_problem(http.delete(f"{base}/v1/members/{uuid.uuid4()}", headers=admin), 404, "not-found")
    assert unknown["detail"] == "aucun membre de votre commune avec cet identifiant"
    assert_french(unknown)
    refused = http.post(f"{base}/v1/service-accounts", json={"name": 1, "access": "all"}, headers=admin)
    assert_french(assert_problem(refused, 422, "validation-error"))
    created = http.post(f"{base}/v1/service-accounts", json={"name": "capteur-crue", "access": "read"}, headers=admin)
    assert created.status_code == 201, created.text
    account = f"{base}/v1/service-accounts/{created.json()['id']}"
    assert http.delete(account, headers=admin).status_code == 204
    revoked = assert_problem(http.post(f"{account}/rotate", headers=admin), 409, "conflict")
    assert revoked["detail"] == "ce compte de service est révoqué : créez-en un nouveau"
    assert_french(revoked)


def test_billing_and_console_answers_are_french(stack, http) -> None:
    billing, operator = stack["urls"]["billing"], stack["operator"]
    assert_french(
        assert_problem(http.get(f"{billing}/v1/metering-accounts/{uuid.uuid4()}", headers=operator), 404, "not-found")
    )
    assert_french(
        assert_problem(http.get(f"{billing}/v1/metering-accounts?limit=0", headers=operator), 422, "validation-error")
    )
    console = stack["urls"]["console"]
    refused = http.get(f"{console}/auth/login", params={"organization": "Commune B; drop"})
    assert_french(assert_problem(refused, 400, "login-failed"))
    unknown = http.get(f"{console}/auth/callback", params={"state": "x" * 43, "code": "c"})
    assert_french(assert_problem(unknown, 400, "login-failed"))


def test_the_authentication_layer_s_refusals_are_french(stack, http) -> None:
    base = stack["urls"]["tenancy"]
    refusals = [
        assert_problem(http.get(f"{base}/v1/tenants"), 401, "unauthenticated"),
        assert_problem(http.get(f"{base}/v1/tenants", headers={"Authorization": "Bearer x"}), 401, "invalid-token"),
        assert_problem(http.get(f"{base}/v1/tenants", headers=stack["admin"]), 403, "forbidden"),
    ]
    for refusal in refusals:
        assert is_french(refusal["title"]), refusal
    for refusal in refusals:
        assert_french(refusal)
