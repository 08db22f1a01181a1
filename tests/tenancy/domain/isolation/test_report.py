"""The isolation evidence report on the real test database, Keycloak and served services.

The demo EPCI and three of its communes are onboarded through the API, and one commune's
first admin has accepted the invitation (the audit feed's login entry through Keycloak's
``account`` client, the entry that made the report cry wolf on a clean demo). The report
then runs every check through the application roles and the running services, and must find
no violation and no gap while showing that every probe really ran.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from socle_devstack.stack import REPO_ROOT, SERVICES
from socle_tenancy.domain.isolation import signing
from socle_tenancy.domain.isolation.html import render
from socle_tenancy.domain.isolation.routes import routes
from socle_tenancy.domain.isolation.services import REGISTRY_SQL, ReportConfig, dsn, run_report
from tests.isolation.servers import bearer, onboard_demo, served_services
from tests.tenancy.conftest import DEMO, DEMO_SIREN

KEY = SecretStr(signing.generate_pem())
PUBLIC = signing.private_key_from_pem(KEY.get_secret_value()).public_key()
#: Tenant-owned tables the migrations create and whose rows the application roles can reach.
PROBED = {
    "tenancy.onboarding_steps",
    "tenancy.quotas",
    "identity.service_accounts",
    "ingestion.devices",
    "timeseries.series",
    "timeseries.readings",
    "timeseries.latest",
    "billing.usage_events",
}


@pytest.fixture(scope="module")
def stack(database, keycloak, credentials, kc_admin) -> Iterator[dict[str, Any]]:
    with served_services(database, keycloak, credentials, ("tenancy", "identity")) as urls:
        operator = bearer(kc_admin, ("operator",))
        onboard_demo(urls["tenancy"], operator)
        epci = {k: DEMO["epci"]["tenant"][k] for k in ("first_admin_email", "email_domains", "quotas")}
        # As `make up` does: the EPCI has its organization too, so its probe token acts like a commune's.
        onboarded = httpx.post(
            f"{urls['tenancy']}/v1/epcis/{DEMO_SIREN}/onboarding", json=epci, headers=operator, timeout=120
        )
        assert onboarded.status_code == 200, onboarded.text
        yield {"urls": urls, "operator": operator}


def report_config(database, keycloak, credentials, **overrides: Any) -> ReportConfig:
    values: dict[str, Any] = {
        "database_urls": {s: database.url(s, "app") for s in SERVICES},
        "signing_key": KEY,
        "environment": "test",
        "oidc_issuer": keycloak.issuer,
        "keycloak_client_secret": SecretStr(credentials["platform_client"]),
    }
    values.update(overrides)
    return ReportConfig(**values)


@pytest.fixture(scope="module")
async def sampled(stack, database) -> list[dict[str, Any]]:
    connection = await asyncpg.connect(dsn(database.url("tenancy", "app")))
    try:
        return [dict(r) for r in await connection.fetch(REGISTRY_SQL, 4)]
    finally:
        await connection.close()


async def accepted_invitation(database, tenant: uuid.UUID) -> None:
    """The entry the audit feed writes when a first admin sets their password through Keycloak's ``account`` client."""
    connection = await asyncpg.connect(dsn(database.url("tenancy", "app")))
    user = str(uuid.uuid4())
    details = {
        "keycloak_event_id": str(uuid.uuid4()),
        "keycloak_type": "LOGIN",
        "client_id": "account",
        "user_id": user,
        "ip_address": "127.0.0.1",
    }
    try:
        async with connection.transaction():
            await connection.execute("SELECT set_config('app.tenant_id', $1, true)", str(tenant))
            await connection.execute(
                "SELECT tenancy.append_audit($1, $2, 'login.success', 'client:account', 'success', $3::jsonb)",
                tenant,
                user,
                json.dumps(details),
            )
    finally:
        await connection.close()


@pytest.fixture(scope="module")
async def report(stack, sampled, database, keycloak, credentials, kc_admin) -> dict[str, Any]:
    """One run, after a commune's first admin accepted the invitation."""
    commune = next(t for t in sampled if t["key"].startswith("commune-"))
    await accepted_invitation(database, commune["id"])
    return await run_report(report_config(database, keycloak, credentials, service_urls=stack["urls"]))


@pytest.mark.timeout(900)
async def test_the_report_on_the_demo_epci_finds_no_violation(report) -> None:
    assert report["schema_version"] == "2"
    assert report["violations"] == []
    assert report["gaps"] == []
    assert report["verdict"] == "pass"
    assert report["counts"]["violations"] == report["counts"]["gaps"] == 0
    keys = [t["key"] for t in report["sample"]["tenants"]]
    assert keys[0] == "epci-243000296"
    assert len(keys) == 4
    assert all(t["source"] == "registry" for t in report["sample"]["tenants"])
    assert report["sample"]["ordered_pairs"] == 12


async def test_every_tenant_owned_table_is_listed_with_rls_enabled_forced_and_anchored(report) -> None:
    tables = {f"{t['schema']}.{t['table']}": t for t in report["catalogue"]["tables"]}
    assert set(tables) >= PROBED
    for name, table in tables.items():
        assert table["rls_enabled"], name
        assert table["rls_forced"], name
        assert table["violations"] == [], name
        assert table["owner"].endswith("_owner"), name
    devices = {p["name"]: p for p in tables["ingestion.devices"]["policies"]}
    assert devices["tenant_isolation"]["kind"] == "tenant_isolation"
    assert devices["tenant_isolation"]["using_anchors"] == ["tenant_id"]
    assert devices["tenant_isolation"]["with_check_anchors"] == ["tenant_id"]
    assert "app.tenant_id" in devices["tenant_isolation"]["using"]
    # The data-sharing grants' extra read path (ingestion's migration 0002): read-only, through a grant.
    shared = devices["tenant_isolation_shared_read"]
    assert shared["kind"] == "shared_read"
    assert shared["command"] == "SELECT"
    assert shared["using_anchors"] == ["shared"]
    assert shared["problems"] == []
    partitions = [t for t in tables.values() if t["kind"] == "partition"]
    assert all(t["parent"] for t in partitions)


async def test_the_database_probes_really_ran_for_every_table_and_pair(report) -> None:
    services = {s["service"]: s for s in report["database_probes"]["services"]}
    assert set(services) == set(SERVICES)
    probed = {}
    for name, service in services.items():
        assert service["status"] == "ran"
        assert service["connected_as"] == f"socle_{name}_app"
        probed.update({f"{t['schema']}.{t['table']}": t for t in service["tables"]})
    for name in PROBED:
        table = probed[name]
        assert table["insert_probe"] == "ran", (name, table["insert_probe"])
        assert table["no_context_visible"] == 0
        assert len(table["pairs"]) == 12, name
        assert all(count > 0 for count in table["rows_per_tenant"].values()), (name, table["insert_failures"])
        for pair in table["pairs"]:
            assert pair["target_rows"] > 0
            assert pair["select_visible"] == 0
            assert pair["update"]["affected"] == 0
            assert pair["delete"]["affected"] == 0
            assert pair["insert"]["refused"] is True
            assert pair["insert"]["by"] == "row-level security"
            assert pair["outcome"] == "refused"
    counts = report["counts"]
    assert counts["database_pair_probes_refused"] >= 12 * len(PROBED)
    assert counts["probe_rows_inserted"] > 0


async def test_application_roles_are_neither_superuser_nor_bypassrls_nor_owners(report) -> None:
    roles = {r["name"]: r for r in report["roles"]["application_roles"]}
    assert set(roles) >= {f"socle_{s}_app" for s in SERVICES}
    for name, role in roles.items():
        assert role["superuser"] is False, name
        assert role["bypassrls"] is False, name
        assert role["owns"] == [], name
        assert role["violations"] == [], name


async def test_the_api_probes_ran_on_every_tenant_scoped_route_for_every_pair(report, sampled) -> None:
    api = report["api_probes"]
    assert api["status"] == "ran"
    assert api["probe_clients_removed"] == 4
    # 4 service accounts, 8 grants (two grantees per grantor, never the prober), 4 members: all removed.
    assert api["probe_resources"] == {"removed": 16, "not_removed": []}
    # Billing is served with tenancy (onboarding opens metering accounts there), so it is probed too.
    assert api["unclassified"] == {"billing": [], "identity": [], "tenancy": []}
    assert [p for p in api["probes"] if p["outcome"] != "refused"] == []
    by_route: dict[str, list[dict[str, Any]]] = {}
    for probe in api["probes"]:
        by_route.setdefault(f"{probe['service']} {probe['method']} {probe['path']}", []).append(probe)
    resource_routes = [
        r for r in routes() if r.scope == "tenant-resource" and r.service in ("tenancy", "identity", "billing")
    ]
    for rule in resource_routes:
        probes = by_route[f"{rule.service} {rule.method} {rule.path}"]
        assert len(probes) == 12, rule.path  # every ordered pair of the 4 tenants
        assert {(p["status"], p["baseline_status"], p["problem_json"]) for p in probes} == {(404, 404, True)}, probes
        assert all(p["leaked"] == [] and p["identifying_values_compared"] > 0 for p in probes), rule.path
        assert {(p["actor"], p["target"]) for p in probes} == {
            (a["id"], b["id"]) for a in report["sample"]["tenants"] for b in report["sample"]["tenants"] if a != b
        }
    tenants = by_route["tenancy GET /v1/tenants/{ref:str}"]
    assert all(p["owner_view_status"] == 200 for p in tenants)
    accounts = by_route["identity GET /v1/service-accounts/{account_id:uuid}"]
    assert {p["resource"]["origin"] for p in accounts} == {"créée par le rapport"}
    grants = by_route["tenancy GET /v1/grants/{grant_id:uuid}"]
    assert all(p["owner_view_status"] == 200 for p in grants)
    own_lists = [p for p in api["probes"] if p["path"] in ("/v1/grants", "/v1/service-accounts", "/v1/members")]
    assert len(own_lists) == 3 * 12
    assert all(p["status"] == 200 and p["identifying_values_compared"] > 0 for p in own_lists)
    coverage = {row["route"]: row for row in api["coverage"]}
    assert {row["status"] for row in coverage.values()} == {"probed", "by_design"}
    assert coverage["identity DELETE /v1/members/{user_id:uuid}"] == {
        "route": "identity DELETE /v1/members/{user_id:uuid}",
        "scope": "tenant-resource",
        "status": "probed",
        "probes": 12,
    }
    assert coverage["console GET /communes/{alias:str}"]["status"] == "by_design"
    assert report["counts"]["api_probes_refused"] == report["counts"]["api_probes"] == len(api["probes"])
    assert report["counts"]["api_probes_skipped"] == 0


async def test_the_audit_log_of_an_accepted_invitation_is_compared_and_not_taken_for_a_leak(report, sampled) -> None:
    """The word ``account`` is in the refusal and in the entry: a common word, not a value of the target."""
    commune = next(t for t in sampled if t["key"].startswith("commune-"))
    audit = [
        p
        for p in report["api_probes"]["probes"]
        if p["path"] in ("/v1/audit/entries", "/v1/audit/export") and p["target"] == str(commune["id"])
    ]
    assert len(audit) == 6
    for probe in audit:
        assert probe["outcome"] == "refused", probe
        assert probe["leaked"] == []
        assert probe["request"].endswith(f"?tenant={commune['id']}")


async def test_the_audit_chain_is_verified(report) -> None:
    assert report["audit_chain"]["status"] == "verified", report["audit_chain"]
    assert report["audit_chain"]["detail"]


def test_the_signature_verifies_with_the_public_key_alone_and_any_edit_is_detected(report, tmp_path: Path) -> None:
    key_id = signing.key_id(PUBLIC)
    assert report["signature"]["algorithm"] == "Ed25519"
    assert signing.verify(report, PUBLIC) == (True, f"signature valide (Ed25519, clé {key_id})")
    edited = copy.deepcopy(report)
    edited["database_probes"]["services"][0]["tables"][0]["pairs"][0]["select_visible"] = 7
    valid, why = signing.verify(edited, PUBLIC)
    assert valid is False
    assert "modifié après sa signature" in why
    other = signing.private_key_from_pem(signing.generate_pem())
    assert signing.verify(report, other.public_key())[0] is False
    # Whoever holds only the public key cannot sign: a report re-signed with another key is refused.
    assert signing.verify(signing.sign(edited, other), PUBLIC)[0] is False

    good, bad, public = tmp_path / "report.json", tmp_path / "edited.json", tmp_path / "public.pem"
    good.write_text(json.dumps(report))
    bad.write_text(json.dumps(edited))
    public.write_text(signing.public_key_pem(PUBLIC))
    env = {"PATH": "/usr/bin:/bin"}  # no private key anywhere
    command = [sys.executable, "-m", "socle_tenancy.domain.isolation", "verify"]
    ok = subprocess.run(
        [*command, str(good), "--public-key", str(public)],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "signature valide" in ok.stdout
    ko = subprocess.run(
        [*command, str(bad), "--public-key", str(public)],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=False,
    )
    assert ko.returncode == 1
    assert "modifié après sa signature" in ko.stderr


async def test_the_html_page_is_self_contained_in_french_and_shows_the_verdict(report) -> None:
    page = render(report)
    assert page.startswith("<!doctype html><html lang='fr'>")
    assert "Verdict : RÉUSSI — 0 violation(s), 0 lacune(s)" in page
    assert "Couverture des routes propres à une collectivité" in page
    assert "ingestion.devices" in page
    assert "epci-243000296" in page
    assert report["signature"]["value"] in page
    assert "--public-key" in page
    for external in ("<script", "<link", "src=", "@import", "url("):
        assert external not in page
