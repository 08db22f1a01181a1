"""Bad input is a 4xx problem naming the field, never a 5xx: the services over HTTP on the real stack.

Each request is one that answered 500 or 502 before (security review, finding 7), or one
that got past the tenant guard or was silently half-read (finding 9): sent as raw bytes to
the tenancy, identity, billing and console apps served by uvicorn, with real Keycloak tokens.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.core.test_app import assert_problem
from tests.isolation.servers import bearer, served_services
from tests.support.keycloak_admin import create_commune
from tests.tenancy.conftest import DEMO_SIREN

JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def stack(database, keycloak, credentials, kc_admin) -> Iterator[dict[str, Any]]:
    """The apps over HTTP, and tokens: an operator, an admin of a commune (a Keycloak organization)."""
    commune = create_commune(kc_admin)
    services = ("tenancy", "identity", "billing", "console")
    overrides = {"console": {"oidc_client_secret": credentials["console_client"]}}
    with served_services(database, keycloak, credentials, services, overrides=overrides) as urls:
        yield {
            "urls": urls,
            "operator": bearer(kc_admin, ("operator",)),
            "admin": bearer(kc_admin, ("commune-admin",), (commune.alias, commune.tenant_id)),
            "tenant": commune.tenant_id,
        }


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=60) as client:
        yield client


def field_of(problem: dict[str, Any]) -> str:
    assert len(problem["errors"]) == 1, problem
    assert set(problem["errors"][0]) == {"location", "field", "detail"}, problem
    return str(problem["errors"][0]["field"])


def test_json_nested_a_thousand_levels_is_refused_before_decoding(stack, http) -> None:
    for deep in (b'{"name":' * 1000 + b'"x"' + b"}" * 1000, b"[" * 5000 + b"]" * 5000):
        response = http.post(
            f"{stack['urls']['identity']}/v1/service-accounts", content=deep, headers={**stack["admin"], **JSON}
        )
        problem = assert_problem(response, 400, "bad-request")
        assert field_of(problem) == "body"
        assert "32 niveaux" in problem["detail"]
    shallow = {"name": "capteur-crue", "access": "read", "x": [[[[{"y": [1]}]]]]}  # still decoded, then refused
    response = http.post(f"{stack['urls']['identity']}/v1/service-accounts", json=shallow, headers=stack["admin"])
    assert_problem(response, 422, "validation-error")


def test_invalid_utf8_in_a_json_body_is_a_400(stack, http) -> None:
    response = http.post(
        f"{stack['urls']['identity']}/v1/service-accounts",
        content=b'{"name": "capteur-\xff\xfe", "access": "read"}',
        headers={**stack["admin"], **JSON},
    )
    problem = assert_problem(response, 400, "bad-request")
    assert field_of(problem) == "body"
    assert "UTF-8" in problem["detail"]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (rb'{"name": "capteur\u0000crue", "access": "read"}', "body.name"),
        (rb'{"name": "capteur\ud800", "access": "read"}', "body.name"),
        (rb'{"name": "capteur", "access": "read", "labels": {"zone\u0000": "vidourle"}}', "body.labels.zone\x00"),
    ],
    ids=["nul-in-value", "unpaired-surrogate", "nul-in-key"],
)
def test_nul_or_unpaired_surrogate_in_a_json_string_is_a_422_naming_the_field(stack, http, raw, field) -> None:
    response = http.post(
        f"{stack['urls']['identity']}/v1/service-accounts", content=raw, headers={**stack["admin"], **JSON}
    )
    problem = assert_problem(response, 422, "validation-error")
    assert field_of(problem) == field
    assert problem["errors"][0]["location"] == "body"


def test_nul_or_invalid_utf8_in_the_path_is_a_400_naming_the_parameter(stack, http) -> None:
    for raw in ("%00abc", "commune-%ff%fe", "%ed%a0%80"):  # NUL, invalid UTF-8, an encoded surrogate
        response = http.get(f"{stack['urls']['tenancy']}/v1/tenants/{raw}", headers=stack["operator"])
        problem = assert_problem(response, 400, "bad-request")
        assert field_of(problem) == "path.ref", raw


def test_nul_or_invalid_utf8_in_the_query_is_a_400_naming_the_parameter(stack, http) -> None:
    for raw in ("%00", "abc%ff", "%ed%b0%80"):
        response = http.get(f"{stack['urls']['tenancy']}/v1/audit/entries?cursor={raw}", headers=stack["admin"])
        problem = assert_problem(response, 400, "bad-request")
        assert field_of(problem) == "query.cursor", raw


@pytest.mark.parametrize(
    ("service", "path", "parameter", "role"),
    [
        ("tenancy", "/v1/tenants", "offset", "operator"),
        ("tenancy", "/v1/grants", "offset", "admin"),
        ("billing", "/v1/metering-accounts", "offset", "operator"),
        ("identity", "/v1/members", "first", "admin"),  # Keycloak's range: it answered 400, we said 502
    ],
)
def test_integers_beyond_their_range_are_a_422_naming_the_parameter(stack, http, service, path, parameter, role):
    for value in (2**31, 2**63, 2**64):
        response = http.get(f"{stack['urls'][service]}{path}", params={parameter: value}, headers=stack[role])
        problem = assert_problem(response, 422, "validation-error")
        assert field_of(problem) == f"query.{parameter}"
    largest = http.get(f"{stack['urls'][service]}{path}", params={parameter: 2**31 - 1}, headers=stack[role])
    assert largest.status_code == 200, largest.text


def test_a_quota_beyond_the_database_integer_is_a_422_naming_the_field(stack, http) -> None:
    tenancy = stack["urls"]["tenancy"]
    registered = http.post(f"{tenancy}/v1/epcis", json={"siren": DEMO_SIREN}, headers=stack["operator"])
    assert registered.status_code in (200, 201), registered.text
    quotas = f"{tenancy}/v1/tenants/epci-{DEMO_SIREN}/quotas"
    response = http.patch(quotas, json={"max_devices": 2**31}, headers=stack["operator"])
    problem = assert_problem(response, 422, "validation-error")
    assert field_of(problem) == "body.max_devices"


def test_a_body_of_another_media_type_is_a_415(stack, http) -> None:
    """Litestar decodes a JSON body whatever its Content-Type says: such a body skipped the tenant guard."""
    body = json.dumps({"name": "capteur-texte", "access": "read", "tenant_id": str(uuid.uuid4())}).encode()
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {**stack["admin"], **({"Content-Type": content_type} if content_type else {})}
        response = http.post(f"{stack['urls']['identity']}/v1/service-accounts", content=body, headers=headers)
        problem = assert_problem(response, 415, "unsupported-media-type")
        assert "application/json" in problem["detail"]


def test_the_tenant_guard_reads_keys_as_decoded(stack, http) -> None:
    """``"\\u0074enant_id"`` is ``tenant_id`` to the handler's decoder, so it is to the guard."""
    other = uuid.uuid4()
    for key in (r"\u0074enant_id", r"tenant\u005fid", r"\u0074\u0065\u006e\u0061\u006e\u0074"):
        raw = f'{{"name": "capteur-b", "access": "read", "{key}": "{other}"}}'.encode()
        response = http.post(
            f"{stack['urls']['identity']}/v1/service-accounts", content=raw, headers={**stack["admin"], **JSON}
        )
        assert_problem(response, 404, "not-found")
    duplicated = f'{{"tenant_id": "{other}", "tenant_id": "{stack["tenant"]}", "name": "capteur-c", "access": "read"}}'
    response = http.post(
        f"{stack['urls']['identity']}/v1/service-accounts",
        content=duplicated.encode(),
        headers={**stack["admin"], **JSON},
    )
    assert_problem(response, 404, "not-found")


def test_an_unknown_query_parameter_is_a_400_naming_it(stack, http) -> None:
    """``?tenant_id=`` answered the caller's own grants without a word."""
    url = f"{stack['urls']['tenancy']}/v1/grants"
    response = http.get(url, params={"tenant_id": str(uuid.uuid4()), "limit": 5}, headers=stack["admin"])
    problem = assert_problem(response, 400, "bad-request")
    assert field_of(problem) == "query.tenant_id"
    assert "offset" in problem["detail"]  # what the route does accept
    assert http.get(url, params={"limit": 5, "offset": 0}, headers=stack["admin"]).status_code == 200
    response = http.get(f"{stack['urls']['identity']}/v1/me", params={"debug": "1"}, headers=stack["admin"])
    assert field_of(assert_problem(response, 400, "bad-request")) == "query.debug"
    schema = http.get(f"{stack['urls']['identity']}/schema/openapi.json", params={"v": "2"})
    assert field_of(assert_problem(schema, 400, "bad-request")) == "query.v"


def test_the_console_callback_takes_what_keycloak_adds(stack, http) -> None:
    """Keycloak's authorization response carries ``session_state`` and ``iss``: declared as accepted."""
    params = {"state": "unknown", "code": "c", "session_state": "s", "iss": "https://idp", "error_description": "d"}
    response = http.get(f"{stack['urls']['console']}/auth/callback", params=params)
    assert_problem(response, 400, "login-failed")  # an unknown login, not an unknown parameter
    response = http.get(f"{stack['urls']['console']}/auth/callback", params={**params, "tenant_id": "x"})
    assert field_of(assert_problem(response, 400, "bad-request")) == "query.tenant_id"
