"""The isolation evidence report on the real test database, Keycloak and served services.

The demo EPCI and three of its communes are onboarded through the API; the report then runs
every check through the application roles and the running services, and must find no
violation while showing that every probe really ran.
"""

from __future__ import annotations

import copy
import json
import secrets
import subprocess
import sys
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
from socle_tenancy.domain.isolation.services import REGISTRY_SQL, ReportConfig, dsn, run_report
from tests.isolation.servers import bearer, onboard_demo, served_services

KEY = SecretStr("test-" + secrets.token_urlsafe(40))
#: Tenant-owned tables the migrations create and whose rows the application roles can reach.
PROBED = {
    "tenancy.onboarding_steps",
    "tenancy.quotas",
    "identity.service_accounts",
    "ingestion.devices",
    "timeseries.readings",
    "billing.usage_events",
}


@pytest.fixture(scope="module")
def stack(database, keycloak, credentials, kc_admin) -> Iterator[dict[str, Any]]:
    with served_services(database, keycloak, credentials, ("tenancy", "identity")) as urls:
        operator = bearer(kc_admin, ("operator",))
        onboard_demo(urls["tenancy"], operator)
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


@pytest.fixture(scope="module")
async def report(stack, sampled, database, keycloak, credentials, kc_admin) -> dict[str, Any]:
    """One run; a commune of the sample first gets a service account, so identity's routes have a target."""
    commune = next(t for t in sampled if t["key"].startswith("commune-"))
    admin = bearer(kc_admin, ("commune-admin",), (commune["key"], commune["id"]))
    async with httpx.AsyncClient(base_url=stack["urls"]["identity"], timeout=60) as http:
        created = await http.post(
            "/v1/service-accounts", json={"name": "station-crue", "access": "read"}, headers=admin
        )
    assert created.status_code == 201, created.text
    return await run_report(report_config(database, keycloak, credentials, service_urls=stack["urls"]))


@pytest.mark.timeout(900)
async def test_the_report_on_the_demo_epci_finds_no_violation(report) -> None:
    assert report["schema_version"] == "1"
    assert report["violations"] == []
    assert report["verdict"] == "pass"
    assert report["counts"]["violations"] == 0
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
    if "tenant_isolation_shared_read" in devices:  # the data-sharing grants' extra read path
        assert devices["tenant_isolation_shared_read"]["kind"] == "shared_read"
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


async def test_the_api_probes_got_404_for_every_pair(report, sampled) -> None:
    api = report["api_probes"]
    assert api["status"] == "ran"
    assert api["probe_clients_removed"] == 4
    # Billing is served with tenancy (onboarding opens metering accounts there), so it is probed too.
    assert api["unclassified"] == {"billing": [], "identity": [], "tenancy": []}
    by_route: dict[str, list[dict[str, Any]]] = {}
    for probe in api["probes"]:
        by_route.setdefault(f"{probe['method']} {probe['path']}", []).append(probe)
    tenants = by_route["GET /v1/tenants/{ref:str}"]
    assert len(tenants) == 12
    assert all(p["status"] == 404 and p["problem_json"] and p["outcome"] == "refused" for p in tenants)
    assert all(p["owner_view_status"] == 200 for p in tenants)
    metering = by_route["GET /v1/metering-accounts/{tenant_id:uuid}"]
    assert len(metering) == 12
    assert all(p["status"] == 404 and p["problem_json"] and p["leaked"] == [] for p in metering), metering
    # The three onboarded communes read their own account (the EPCI's depends on its own onboarding).
    assert sum(p["owner_view_status"] == 200 for p in metering) >= 9, metering
    accounts = [p for p in by_route["GET /v1/service-accounts/{account_id:uuid}"] if p["outcome"] != "skipped"]
    assert len(accounts) >= 3  # the commune with a service account, probed by the three others
    assert all(p["status"] == 404 and p["leaked"] == [] for p in accounts)
    revoked = [p for p in by_route["DELETE /v1/service-accounts/{account_id:uuid}"] if p["outcome"] != "skipped"]
    assert revoked
    assert all(p["status"] == 404 for p in revoked)
    assert report["counts"]["api_probes_refused"] == report["counts"]["api_probes"] > 12


async def test_the_audit_chain_is_verified(report) -> None:
    assert report["audit_chain"]["status"] == "verified", report["audit_chain"]
    assert report["audit_chain"]["detail"]


def test_the_signature_verifies_and_any_edit_is_detected(report, tmp_path: Path) -> None:
    assert signing.verify(report, KEY) == (True, f"signature valid (HMAC-SHA256, key id {signing.key_id(KEY)})")
    edited = copy.deepcopy(report)
    edited["database_probes"]["services"][0]["tables"][0]["pairs"][0]["select_visible"] = 7
    valid, why = signing.verify(edited, KEY)
    assert valid is False
    assert "edited" in why
    assert signing.verify(report, SecretStr("test-" + "x" * 40))[0] is False

    good, bad = tmp_path / "report.json", tmp_path / "edited.json"
    good.write_text(json.dumps(report))
    bad.write_text(json.dumps(edited))
    env = {"PATH": "/usr/bin:/bin", "SOCLE_TENANCY_REPORT_SIGNING_KEY": KEY.get_secret_value()}
    command = [sys.executable, "-m", "socle_tenancy.domain.isolation", "verify"]
    ok = subprocess.run([*command, str(good)], env=env, capture_output=True, text=True, cwd=REPO_ROOT, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "signature valid" in ok.stdout
    ko = subprocess.run([*command, str(bad)], env=env, capture_output=True, text=True, cwd=REPO_ROOT, check=False)
    assert ko.returncode == 1
    assert "edited after it was signed" in ko.stderr


async def test_the_html_page_is_self_contained_and_shows_the_verdict(report) -> None:
    page = render(report)
    assert page.startswith("<!doctype html>")
    assert "Verdict: PASS — 0 violation(s)" in page
    assert "ingestion.devices" in page
    assert "epci-243000296" in page
    assert report["signature"]["value"] in page
    for external in ("<script", "<link", "src=", "@import", "url("):
        assert external not in page
