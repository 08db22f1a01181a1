"""The JWT rejection suite against running services: every forged or misused token gets a 401 problem.

Tokens go to the identity app (and, for a tenant named in the path, the tenancy app) built as
in production on the real PostgreSQL and Keycloak. "Forged" tokens are signed with an extra key
the realm publishes (``forging_key``), so each claim check is exercised alone on a token whose
signature is otherwise valid; the control test shows such a token is accepted when nothing is wrong.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from litestar.testing import AsyncTestClient

import socle_core.auth
from socle_core.auth import CrossTenantAttempt
from socle_devstack.stack import REPO_ROOT
from socle_tenancy.app import create_app as create_tenancy
from socle_tenancy.config import TenancySettings
from socle_tenancy.domain.isolation.services import dsn
from tests.core.test_app import assert_problem
from tests.core.test_audit import _chain as audit_chain
from tests.core.test_auth import forging_key  # noqa: F401  (session fixture: a key the realm publishes)
from tests.support.apps import settings_kwargs
from tests.support.fixtures import new_tenant, registered_commune
from tests.support.tokens import SigningKey, b64, claims_for, unsigned, unverified_claims

#: The deployment's EPCI in the shared test database (the demo declaration, as the tenancy tests use).
DEMO_SIREN = json.loads((REPO_ROOT / "tenants" / "demo" / "cc-pays-de-sommieres.json").read_text())["epci"]["siren"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def refused(identity: AsyncTestClient, token: str, reason: str) -> dict[str, Any]:
    response = await identity.get("/v1/me", headers=bearer(token))
    body = assert_problem(response, 401, "invalid-token")
    assert reason in body["detail"], body
    assert response.headers["www-authenticate"].startswith("Bearer")
    return body


async def test_control_a_validly_signed_token_is_accepted(identity, forging_key, keycloak) -> None:  # noqa: F811
    response = await identity.get("/v1/me", headers=bearer(forging_key.sign(claims_for(keycloak.issuer))))
    assert response.status_code == 200, response.text
    assert response.json()["subject"] == "forged-subject"


async def test_alg_none(identity, keycloak) -> None:
    await refused(identity, unsigned(claims_for(keycloak.issuer)), "algorithme de signature 'none'")
    await refused(identity, unsigned(claims_for(keycloak.issuer), alg="None"), "algorithme de signature 'None'")


async def test_hs256_signed_with_the_realm_public_key(identity, keycloak) -> None:
    async with httpx.AsyncClient(timeout=20) as client:
        jwks = (await client.get(f"{keycloak.issuer}/protocol/openid-connect/certs")).json()
    realm_key = next(k for k in jwks["keys"] if k["kty"] == "RSA")
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": realm_key["kid"]}).encode())
    body = b64(json.dumps(claims_for(keycloak.issuer)).encode())
    for secret in (json.dumps(realm_key).encode(), realm_key["n"].encode()):
        mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
        await refused(identity, f"{head}.{body}.{b64(mac)}", "algorithme de signature 'HS256'")


async def test_unknown_kid(identity, keycloak) -> None:
    stranger = SigningKey.generate()
    stranger.kid = "not-a-realm-key"
    await refused(identity, stranger.sign(claims_for(keycloak.issuer)), "clé inconnue")


@pytest.mark.parametrize(
    ("kid", "reason"),
    [
        # Syntactically possible kids are only ever dictionary keys of the cached JWKS: unknown, never a path.
        ("../../../../../../dev/null", "clé inconnue"),
        ("' OR '1'='1", "pas d'identifiant de clé (kid) valide"),
        ("x'; DROP TABLE keys; --", "pas d'identifiant de clé (kid) valide"),
        ("/etc/passwd\u0000", "pas d'identifiant de clé (kid) valide"),
        ("", "pas d'identifiant de clé (kid) valide"),
        ("k" * 500, "pas d'identifiant de clé (kid) valide"),
    ],
)
async def test_injected_kid(identity, forging_key, keycloak, kid, reason) -> None:  # noqa: F811
    await refused(identity, forging_key.sign(claims_for(keycloak.issuer), kid=kid), reason)


async def test_kid_of_a_realm_key_with_a_path_suffix(identity, forging_key, keycloak) -> None:  # noqa: F811
    token = forging_key.sign(claims_for(keycloak.issuer), kid=forging_key.kid + "/../" + forging_key.kid)
    await refused(identity, token, "clé inconnue")


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("jku", "https://attacker.example/jwks.json"),
        ("x5u", "https://attacker.example/cert.pem"),
        ("jwk", {"kty": "RSA", "n": "AQAB", "e": "AQAB"}),
        ("x5c", ["MIIB"]),
    ],
)
async def test_key_location_in_the_header(identity, forging_key, keycloak, parameter, value) -> None:  # noqa: F811
    await refused(identity, forging_key.sign(claims_for(keycloak.issuer), **{parameter: value}), parameter)


async def test_wrong_issuer(identity, forging_key, keycloak) -> None:  # noqa: F811
    await refused(identity, forging_key.sign(claims_for(f"{keycloak.url}/realms/master")), "émetteur")
    await refused(identity, forging_key.sign(claims_for(f"{keycloak.url}/realms/proconnect-upstream")), "émetteur")


async def test_wrong_audience(identity, forging_key, keycloak, kc_admin) -> None:  # noqa: F811
    await refused(identity, forging_key.sign(claims_for(keycloak.issuer, audience="account")), "audience")
    real = kc_admin.token(kc_admin.create_client(audience=None))["access_token"]
    await refused(identity, real, "audience")


async def test_expired(identity, forging_key, keycloak) -> None:  # noqa: F811
    past = int(time.time()) - 3600
    await refused(identity, forging_key.sign(claims_for(keycloak.issuer, iat=past - 300, exp=past)), "expiré")


async def test_not_yet_valid(identity, forging_key, keycloak) -> None:  # noqa: F811
    future = int(time.time()) + 3600
    await refused(identity, forging_key.sign(claims_for(keycloak.issuer, nbf=future)), "pas encore valide")
    await refused(identity, forging_key.sign(claims_for(keycloak.issuer, iat=future)), "émis dans le futur")


async def test_an_id_token_is_not_an_access_token(identity, forging_key, keycloak, kc_admin) -> None:  # noqa: F811
    await refused(identity, forging_key.sign(claims_for(keycloak.issuer, typ="ID")), "n'est pas un jeton d'accès")
    issued = kc_admin.token(kc_admin.create_client(), scope="openid")
    assert "id_token" in issued, issued
    body = await refused(identity, issued["id_token"], "")
    assert "audience" in body["detail"] or "n'est pas un jeton d'accès" in body["detail"]


@pytest.mark.parametrize("audience", [{"socle-api": True}, {"aud": "socle-api"}, ["socle-api", 7], 42])
async def test_an_audience_that_is_neither_a_string_nor_a_list_of_strings(
    identity,
    forging_key,  # noqa: F811
    keycloak,
    audience,
) -> None:
    body = await refused(identity, forging_key.sign(claims_for(keycloak.issuer, audience=audience)), "(aud)")
    assert body["detail"] == "l'audience du jeton (aud) doit être une chaîne ou une liste de chaînes"


async def test_a_token_without_typ(identity, forging_key, keycloak) -> None:  # noqa: F811
    claims = claims_for(keycloak.issuer)
    del claims["typ"]
    await refused(identity, forging_key.sign(claims), "pas de type (typ)")


async def test_a_token_without_iat_or_valid_for_years(identity, forging_key, keycloak) -> None:  # noqa: F811
    now = int(time.time())
    claims = claims_for(keycloak.issuer)
    del claims["iat"]
    await refused(identity, forging_key.sign(claims), "pas de date d'émission (iat)")
    decade = claims_for(keycloak.issuer, iat=now, exp=now + 10 * 365 * 86_400)
    body = await refused(identity, forging_key.sign(decade), "dépasse le maximum accepté (3600 s)")
    assert f"({10 * 365 * 86_400} s entre iat et exp)" in body["detail"]
    for flag in (True, "1700000000"):  # a boolean or a string is no time
        await refused(identity, forging_key.sign(claims_for(keycloak.issuer, iat=flag)), "(iat)")
    hour = await identity.get("/v1/me", headers=bearer(forging_key.sign(claims_for(keycloak.issuer, exp=now + 3600))))
    assert hour.status_code == 200, hour.text


async def test_an_organization_alias_and_a_tenant_id_of_different_tenants(
    identity,
    forging_key,  # noqa: F811
    keycloak,
    kc_admin,
    database,
) -> None:
    """The claim's alias and tenant id must be one tenant of the registry, whoever signed the token."""
    a, b = await registered_commune(database), await registered_commune(database)

    def signed(alias: str, tenant: uuid.UUID) -> str:
        return forging_key.sign(claims_for(keycloak.issuer, organization={alias: {"tenant_id": [str(tenant)]}}))

    for alias, tenant in ((a.alias, b.id), (a.alias, uuid.uuid4()), (new_tenant().alias, a.id)):
        body = await refused(identity, signed(alias, tenant), "ne désignent pas le même tenant du registre")
        assert body["detail"] == (
            f"l'organisation {alias!r} et le tenant_id {tenant} du jeton ne désignent pas le même tenant du registre"
        )
    # A service account whose hardcoded claim mixes two tenants, issued by the realm itself.
    mixed = kc_admin.token(kc_admin.create_client(organization=(b.alias, a.id), roles=("commune-admin",)))
    await refused(identity, mixed["access_token"], "ne désignent pas le même tenant du registre")
    unknown = (f"commune-{uuid.uuid4().hex[:8]}", uuid.uuid4())  # neither alias nor id in the registry
    for alias, tenant in ((a.alias, a.id), unknown):  # agreeing, or unknown to the registry
        response = await identity.get("/v1/me", headers=bearer(signed(alias, tenant)))
        assert response.status_code == 200, response.text
        assert (response.json()["organization"], response.json()["tenant_id"]) == (alias, str(tenant))


async def test_a_tampered_real_token(identity, kc_admin) -> None:
    real = kc_admin.token(kc_admin.create_client(organization=("commune-35238", uuid.uuid4())))["access_token"]
    head, _, signature = real.split(".")
    claims = unverified_claims(real)
    claims["organization"] = {"commune-30321": {"tenant_id": [str(uuid.uuid4())]}}
    await refused(identity, f"{head}.{b64(json.dumps(claims).encode())}.{signature}", "signature")


# -- a token of tenant A naming tenant B --------------------------------------------------


@pytest.fixture
def attempts(monkeypatch) -> list[CrossTenantAttempt]:
    """What the core reports to its cross-tenant hook (the audit log is wired there)."""
    seen: list[CrossTenantAttempt] = []
    monkeypatch.setattr(socle_core.auth, "on_cross_tenant_attempt", seen.append)
    return seen


def admin_of(kc_admin, tenant, *roles: str) -> dict[str, str]:
    client = kc_admin.create_client(organization=(tenant.alias, tenant.id), roles=roles or ("commune-admin",))
    return bearer(kc_admin.token(client)["access_token"])


async def test_tenant_b_in_the_path_of_identity(identity, kc_admin, attempts) -> None:
    tenant_a, tenant_b = new_tenant(), new_tenant()
    of_b = await identity.post(
        "/v1/service-accounts", json={"name": "b", "access": "write"}, headers=admin_of(kc_admin, tenant_b)
    )
    assert of_b.status_code == 201, of_b.text
    response = await identity.get(f"/v1/service-accounts/{of_b.json()['id']}", headers=admin_of(kc_admin, tenant_a))
    assert_problem(response, 404, "not-found")


async def test_tenant_b_in_the_path_of_tenancy(clean_socle_env, database, keycloak, credentials, kc_admin, attempts):
    settings = TenancySettings(
        **settings_kwargs("tenancy", database, keycloak, keycloak_client_secret=credentials["platform_client"])
    )
    operator = bearer(kc_admin.token(kc_admin.create_client(roles=("operator",)))["access_token"])
    tenant_a = new_tenant()
    async with AsyncTestClient(create_tenancy(settings)) as tenancy:
        epci = await tenancy.post("/v1/epcis", json={"siren": DEMO_SIREN}, headers=operator)
        assert epci.status_code in (200, 201), epci.text
        tenant_b = epci.json()["tenant"]
        agent_a = bearer(
            kc_admin.token(
                kc_admin.create_client(roles=("commune-agent",), organization=(tenant_a.alias, tenant_a.id))
            )["access_token"]
        )
        for ref in (tenant_b["id"], tenant_b["key"]):
            body = assert_problem(await tenancy.get(f"/v1/tenants/{ref}", headers=agent_a), 404, "not-found")
            assert tenant_b["key"] not in body["detail"]
        agent_b = bearer(
            kc_admin.token(
                kc_admin.create_client(
                    roles=("commune-agent",), organization=(tenant_b["key"], uuid.UUID(tenant_b["id"]))
                )
            )["access_token"]
        )
        own = await tenancy.get(f"/v1/tenants/{tenant_b['id']}", headers=agent_b)
        assert own.status_code == 200, own.text
        assert own.json()["tenant"]["id"] == tenant_b["id"]
    assert [(a.where, a.named) for a in attempts] == [("path", tenant_b["id"]), ("path", tenant_b["key"])]


async def test_tenant_b_in_the_header(identity, kc_admin, attempts) -> None:
    tenant_a, tenant_b = new_tenant(), new_tenant()
    admin_a = admin_of(kc_admin, tenant_a)
    for named in (str(tenant_b.id), tenant_b.alias, str(tenant_b.id).upper()):
        for method, path in (("GET", "/v1/me"), ("GET", "/v1/service-accounts"), ("POST", "/v1/service-accounts")):
            response = await identity.request(
                method,
                path,
                headers={**admin_a, "X-Socle-Tenant": named},
                json={"name": "x", "access": "write"} if method == "POST" else None,
            )
            body = assert_problem(response, 404, "not-found")
            assert body["detail"] == "aucun tenant de ce nom"
    assert (await identity.get("/v1/service-accounts", headers=admin_a)).json() == []  # nothing was created
    assert {(a.where, a.tenant_id, a.organization) for a in attempts} == {("header", str(tenant_a.id), tenant_a.alias)}
    for own in (str(tenant_a.id), tenant_a.alias, str(tenant_a.id).upper()):
        response = await identity.get("/v1/me", headers={**admin_a, "X-Socle-Tenant": own})
        assert response.status_code == 200, response.text
        assert response.json()["tenant_id"] == str(tenant_a.id)


async def test_tenant_b_in_the_body(identity, kc_admin, attempts) -> None:
    tenant_a, tenant_b = new_tenant(), new_tenant()
    admin_a = admin_of(kc_admin, tenant_a)
    for field_name, named in (("tenant_id", str(tenant_b.id)), ("tenant", tenant_b.alias), ("tenant_id", 42)):
        response = await identity.post(
            "/v1/service-accounts", json={"name": "x", "access": "write", field_name: named}, headers=admin_a
        )
        assert_problem(response, 404, "not-found")
    assert (await identity.get("/v1/service-accounts", headers=admin_a)).json() == []
    assert [a.where for a in attempts] == ["body.tenant_id", "body.tenant", "body.tenant_id"]
    # Naming one's own tenant passes the guard; the handler then refuses the unknown field itself.
    own = await identity.post(
        "/v1/service-accounts", json={"name": "x", "access": "write", "tenant_id": str(tenant_a.id)}, headers=admin_a
    )
    assert_problem(own, 422, "validation-error")
    assert (await identity.get("/v1/service-accounts", headers=admin_a)).json() == []


async def test_platform_callers_are_not_bound_by_the_tenant_guard(identity, kc_admin, attempts) -> None:
    """An operator's token names no tenant: a header cannot give it one (``TenantId`` comes only from tokens)."""
    operator = bearer(kc_admin.token(kc_admin.create_client(roles=("operator",)))["access_token"])
    response = await identity.get("/v1/me", headers={**operator, "X-Socle-Tenant": str(uuid.uuid4())})
    assert response.status_code == 200, response.text
    assert response.json()["tenant_id"] is None
    assert attempts == []


async def test_refused_attempts_are_in_the_callers_audit_chain(identity, kc_admin, database) -> None:
    """Each refusal (path, header, body) is appended to the caller's tenant chain, kept though the request failed."""
    tenant_a, tenant_b = new_tenant(), new_tenant()
    admin_a = admin_of(kc_admin, tenant_a)
    of_b = await identity.post(
        "/v1/service-accounts", json={"name": "b", "access": "write"}, headers=admin_of(kc_admin, tenant_b)
    )
    assert_problem(await identity.get(f"/v1/service-accounts/{of_b.json()['id']}", headers=admin_a), 404, "not-found")
    assert_problem(
        await identity.get("/v1/me", headers={**admin_a, "X-Socle-Tenant": tenant_b.alias}), 404, "not-found"
    )
    assert_problem(
        await identity.post(
            "/v1/service-accounts",
            json={"name": "x", "access": "write", "tenant_id": str(tenant_b.id)},
            headers=admin_a,
        ),
        404,
        "not-found",
    )
    entries = [e for e in await audit_chain(database, tenant_a.id) if e["action"] == "cross_tenant.refused"]
    assert [(e["target"], e["outcome"], json.loads(e["details"])["where"]) for e in entries] == [
        (tenant_b.alias, "refused", "header"),
        (str(tenant_b.id), "refused", "body.tenant_id"),
    ]
    assert not [e for e in await audit_chain(database, tenant_b.id) if e["action"] == "cross_tenant.refused"]


async def test_a_flood_of_refusals_is_counted_in_a_few_entries_none_lost(
    identity, kc_admin, database, clean_socle_env, keycloak
) -> None:
    """Hundreds of refusals in seconds: one entry per caller, kind and window; the rest counted in a summary."""
    tenant_a, tenant_b = new_tenant(), new_tenant()
    admin_a = admin_of(kc_admin, tenant_a)
    header = {**admin_a, "X-Socle-Tenant": str(tenant_b.id)}
    for _ in range(300):
        assert (await identity.get("/v1/me", headers=header)).status_code == 404
    for _ in range(40):
        body = {"name": "x", "access": "write", "tenant_id": str(tenant_b.id)}
        assert (await identity.post("/v1/service-accounts", json=body, headers=admin_a)).status_code == 404

    def refusals(entries) -> list[tuple[str, int]]:
        return [
            (
                json.loads(e["details"]).get("kind") or json.loads(e["details"])["where"],
                json.loads(e["details"]).get("suppressed", 0),
            )
            for e in entries
            if e["action"] == "cross_tenant.refused"
        ]

    assert refusals(await audit_chain(database, tenant_a.id)) == [("header", 0), ("body.tenant_id", 0)]

    # The windows end (aged here instead of waiting a minute): the next refusal writes the header summary,
    # the next read of the chain writes the body one. Every refusal is accounted for.
    owner = await asyncpg.connect(dsn(database.url("tenancy", "owner")))
    try:
        aged = await owner.execute(
            "UPDATE tenancy.audit_refusal_windows SET opened_at = opened_at - interval '2 minutes' WHERE chain_id = $1",
            tenant_a.id,
        )
    finally:
        await owner.close()
    assert aged == "UPDATE 2"
    assert (await identity.get("/v1/me", headers=header)).status_code == 404
    settings = TenancySettings(**settings_kwargs("tenancy", database, keycloak))
    async with AsyncTestClient(create_tenancy(settings)) as tenancy:
        page = await tenancy.get("/v1/audit/entries", params={"action": "cross_tenant"}, headers=admin_a)
    assert page.status_code == 200, page.text
    summaries = {e["details"]["kind"]: e for e in page.json()["items"] if "suppressed" in e["details"]}
    assert {kind: e["details"]["suppressed"] for kind, e in summaries.items()} == {"header": 299, "body.tenant_id": 39}
    assert summaries["header"]["target"] == str(tenant_b.id)
    chain = refusals(await audit_chain(database, tenant_a.id))
    assert chain == [("header", 0), ("body.tenant_id", 0), ("header", 299), ("header", 0), ("body.tenant_id", 39)]
    assert sum(suppressed or 1 for _, suppressed in chain) == 300 + 40 + 1  # a summary counts its suppressed only
