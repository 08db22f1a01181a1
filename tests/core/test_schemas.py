"""Names and one-line texts (``socle_core.schemas.label``): no control character, nothing that reorders text.

The type alone, then every input field that uses it, on the real tenancy and identity apps:
each bad value is a 422 naming the field, and nothing changes.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import uuid
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient
from pydantic import BaseModel, ValidationError

from socle_core.schemas import label
from socle_identity.app import create_app as create_identity
from socle_identity.config import IdentitySettings
from socle_reference import default_catalogue
from socle_tenancy.app import create_app as create_tenancy
from socle_tenancy.config import TenancySettings
from socle_tenancy.domain.declarations.services import InvalidDeclaration, load_declaration
from tests.core.test_app import assert_problem
from tests.support.apps import settings_kwargs
from tests.support.fixtures import new_tenant, registered_commune
from tests.tenancy.conftest import DEMO, DEMO_SIREN

#: Every kind of character a label refuses: C0 (NUL, BEL, ESC, tab, line feed), DEL, C1, and the
#: bidirectional formatting characters (marks, embeddings, overrides, isolates, separators).
FORBIDDEN = [
    "\x00", "\x07", "\x1b", "\t", "\n", "\r", "\x7f", "\x85", "\x9b",
    "\u061c", "\u200e", "\u200f", "\u2028", "\u2029",
    "\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069",
]  # fmt: skip


class _Named(BaseModel):
    name: label(40)


@pytest.mark.parametrize("char", FORBIDDEN, ids=lambda c: f"U+{ord(c):04X}")
def test_a_label_refuses_control_and_text_reordering_characters(char: str) -> None:
    with pytest.raises(ValidationError) as raised:
        _Named(name=f"Sommi{char}res")
    (error,) = raised.value.errors()
    assert error["loc"] == ("name",)
    assert f"U+{ord(char):04X}" in error["msg"]
    assert "en position 6" in error["msg"]


@pytest.mark.parametrize("name", ["Saint-Mamert-du-Gard", "L'Île-d'Yeu", "Zoë Ngô", "القاهرة", "東京都", "Mairie 🏛"])
def test_a_label_keeps_ordinary_names_in_any_script(name: str) -> None:
    assert _Named(name=name).name == name


def test_a_label_still_says_when_it_is_too_long() -> None:
    with pytest.raises(ValidationError, match="at most 40 characters"):
        _Named(name="x" * 41)


@pytest.fixture
async def tenancy(clean_socle_env, database, keycloak, credentials):
    settings = TenancySettings(
        **settings_kwargs("tenancy", database, keycloak, keycloak_client_secret=credentials["platform_client"])
    )
    async with AsyncTestClient(create_tenancy(settings)) as client:
        yield client


def _bearer(kc_admin, *roles: str, organization=None) -> dict[str, str]:
    client = kc_admin.create_client(roles=roles, organization=organization)
    return {"Authorization": f"Bearer {kc_admin.token(client)['access_token']}"}


def _refused(response, field: str, char: str) -> None:
    body = assert_problem(response, 422, "validation-error")
    details = {e["field"]: e["detail"] for e in body["errors"]}
    assert field in details, body
    assert f"U+{ord(char):04X}" in details[field]


async def test_tenancy_names_and_reasons_refuse_them_and_nothing_changes(tenancy, kc_admin, database) -> None:
    operator = _bearer(kc_admin, "operator")
    registered = await tenancy.post("/v1/epcis", json={"siren": DEMO_SIREN}, headers=operator)
    assert registered.status_code in (200, 201), registered.text
    epci = registered.json()["tenant"]
    path = f"/v1/tenants/{epci['id']}"

    _refused(
        await tenancy.patch(path, json={"name": "CC du Pays\u202eserèimmoS"}, headers=operator), "body.name", "\u202e"
    )
    _refused(
        await tenancy.post(f"{path}/suspend", json={"reason": "impayé\nOK: reactivated"}, headers=operator),
        "body.reason",
        "\n",
    )
    _refused(
        await tenancy.post(f"{path}/offboarding", json={"reason": "\x1b[2Jdépart"}, headers=operator),
        "body.reason",
        "\x1b",
    )
    onboarding = {"first_admin_email": "mairie@aujargues.test.socle.fr", "display_name": "Aujargues\u2066"}
    _refused(
        await tenancy.post("/v1/tenants/30023/onboarding", json=onboarding, headers=operator),
        "body.display_name",
        "\u2066",
    )
    after = (await tenancy.get(path, headers=operator)).json()["tenant"]
    assert (after["name"], after["status"]) == (epci["name"], epci["status"])
    assert_problem(await tenancy.get("/v1/tenants/commune-30023", headers=operator), 404, "not-found")

    commune = await registered_commune(database)
    admin = _bearer(kc_admin, "commune-admin", organization=(commune.alias, commune.id))
    grant = {
        "grantee": epci["id"],
        "dataset": "devices",
        "reason": "partage\u200f avec l'EPCI",
        "expires_at": (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat(),
    }
    _refused(await tenancy.post("/v1/grants", json=grant, headers=admin), "body.reason", "\u200f")
    assert (await tenancy.get("/v1/grants", headers=admin)).json()["total"] == 0
    revoke = await tenancy.post(f"/v1/grants/{uuid.uuid4()}/revoke", json={"reason": "fin\u2028"}, headers=admin)
    _refused(revoke, "body.reason", "\u2028")


async def test_identity_names_refuse_them_and_nothing_changes(
    clean_socle_env, database, keycloak, credentials, kc_admin
) -> None:
    tenant = new_tenant()
    admin = _bearer(kc_admin, "commune-admin", organization=(tenant.alias, tenant.id))
    settings = IdentitySettings(
        **settings_kwargs("identity", database, keycloak, keycloak_client_secret=credentials["platform_client"])
    )
    async with AsyncTestClient(create_identity(settings)) as identity:
        account = {"name": "TTS\u202euplinks", "access": "write"}
        _refused(await identity.post("/v1/service-accounts", json=account, headers=admin), "body.name", "\u202e")
        assert (await identity.get("/v1/service-accounts", headers=admin)).json() == []
        for field, value, char in (("first_name", "\x07Camille", "\x07"), ("last_name", "Martin\u2067", "\u2067")):
            invitation = {"email": f"agent@{tenant.alias}.test.socle.fr", "role": "commune-agent", field: value}
            response = await identity.post("/v1/members/invitations", json=invitation, headers=admin)
            _refused(response, f"body.{field}", char)


def test_a_declaration_with_such_a_name_is_invalid_with_its_pointer(tmp_path: Path) -> None:
    declaration = copy.deepcopy(DEMO)
    declaration["communes"][0]["display_name"] = "Sommières\u202e"
    declaration["epci"]["display_name"] = "CC\x00"
    file = tmp_path / "declaration.json"
    file.write_text(json.dumps(declaration, ensure_ascii=False))
    with pytest.raises(InvalidDeclaration) as raised:
        load_declaration(file, default_catalogue())
    issues = {i.pointer: i.message for i in raised.value.issues}
    assert "U+202E" in issues["/communes/0/display_name"]
    assert "U+0000" in issues["/epci/display_name"]
