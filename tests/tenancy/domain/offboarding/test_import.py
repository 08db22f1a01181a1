"""``socle-tenants import``: a commune offboarded with its bundle comes back, with the same data.

A commune of the pool (``commune_pool``, no other test uses it) is onboarded with devices, readings and a service
account, then offboarded for real (``--confirm``). Its bundle is imported into the same
platform (the commune moving back in: its kept audit chain must match the bundle's) and
into a fresh one (another database, as another EPCI's Socle: the chain is restored
verbatim). Both times every row is the bundle's, checksums are verified first, and a
tampered bundle or an existing commune is refused before anything is written.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from socle_devstack.stack import SERVICES
from socle_tenancy.domain.offboarding import bundle
from tests.isolation.servers import bearer, create_app, no_socle_environment
from tests.support.apps import served
from tests.support.databases import throwaway_database
from tests.tenancy.conftest import DEMO_SIREN
from tests.tenancy.domain.declarations.serving import socle_tenants
from tests.tenancy.domain.offboarding.conftest import _insert, first_admin_email


@pytest.fixture(scope="module")
def returning(commune_pool) -> str:
    """INSEE code of the commune offboarded, then imported back."""
    return str(commune_pool.take().insee)


def _env(api: str, keycloak: Any, credentials: Any, url: Callable[[str, str], str]) -> dict[str, str]:
    env = {
        "SOCLE_TENANTS_API": api,
        "SOCLE_TENANTS_ISSUER": keycloak.issuer,
        "SOCLE_TENANTS_CLIENT_SECRET": credentials["platform_client"],
        "SOCLE_TENANTS_AUTH": "client-credentials",  # the platform client, as automation does
    }
    return env | {f"SOCLE_{s.upper()}_DATABASE_URL": url(s, "app") for s in SERVICES}


def snapshot(url: Callable[[str, str], str], tenant_id: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of the tenant in every tenant-owned table, read through the app roles in its context."""

    async def read() -> dict[str, list[dict[str, Any]]]:
        rows: dict[str, list[dict[str, Any]]] = {}
        for service in SERVICES:
            dsn = url(service, "app").replace("postgresql+asyncpg://", "postgresql://")
            async with bundle.tenant_transaction(dsn, uuid.UUID(tenant_id), readonly=True) as connection:
                for ref in await bundle.discover(connection, service):
                    found = await connection.fetch(
                        f"SELECT to_jsonb(t)::text FROM {ref.qualified} t WHERE t.tenant_id = $1",
                        uuid.UUID(tenant_id),
                    )
                    rows[ref.name] = sorted((json.loads(r[0]) for r in found), key=lambda r: json.dumps(r))
        return rows

    return asyncio.run(read())


def _by_seq(rows: list[dict[str, Any]]) -> list[tuple[int, str, str]]:
    return sorted((r["seq"], r["action"], r["hash"]) for r in rows)


def assert_same_data(before: dict[str, list[dict[str, Any]]], after: dict[str, list[dict[str, Any]]]) -> None:
    """The bundle's rows, all of them and nothing else; service accounts come back revoked."""
    assert set(after) == set(before)
    for table, rows in before.items():
        if table == "tenancy.audit_entries":  # the same chain, then the import's own entries
            assert _by_seq(after[table])[: len(rows)] == _by_seq(rows)
            assert "tenant.imported" in [a for _, a, _ in _by_seq(after[table])[len(rows) :]]
        elif table == "identity.service_accounts":
            assert [{**r, "revoked_at": None} for r in after[table]] == rows
            assert all(r["revoked_at"] for r in after[table])
        else:
            assert after[table] == rows, table


def data_rows(rows: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    return {table: found for table, found in rows.items() if table != "tenancy.audit_entries"}


async def _service_account(url: Callable[[str, str], str], tenant_id: str) -> None:
    dsn = url("identity", "app").replace("postgresql+asyncpg://", "postgresql://")
    async with bundle.tenant_transaction(dsn, uuid.UUID(tenant_id)) as connection:
        await connection.execute(
            "INSERT INTO identity.service_accounts (tenant_id, id, client_id, name, access) "
            "VALUES ($1, $2, $3, $4, 'write')",
            uuid.UUID(tenant_id),
            uuid.uuid4(),
            f"station-crue-{uuid.uuid4().hex[:6]}",
            "Station de crue du Vidourle",
        )


@pytest.fixture(scope="module")
def offboarded(
    database, keycloak, credentials, billing_url, kc_admin, tmp_path_factory, returning
) -> Iterator[dict[str, Any]]:
    """The commune with data, then offboarded for real; its bundle and what its rows were."""
    operator = bearer(kc_admin, ("operator",))
    with no_socle_environment():
        app = create_app("tenancy", database, keycloak, credentials, billing_url=billing_url)
    with served(app) as api:
        assert httpx.post(f"{api}/v1/epcis", json={"siren": DEMO_SIREN}, headers=operator, timeout=30).is_success
        onboarded = httpx.post(
            f"{api}/v1/tenants/{returning}/onboarding",
            json={"first_admin_email": first_admin_email(returning), "email_domains": [f"c{returning}.test.socle.fr"]},
            headers=operator,
            timeout=60,
        )
        assert onboarded.status_code == 200, onboarded.text
        tenant = onboarded.json()["tenant"]
        asyncio.run(_insert(database, tenant["id"], f"c{returning}"))
        asyncio.run(_service_account(database.url, tenant["id"]))
        before = snapshot(database.url, tenant["id"])
        exports = tmp_path_factory.mktemp("exports")
        env = _env(api, keycloak, credentials, database.url)
        result = socle_tenants(
            "offboard", returning, "--export-dir", str(exports), "--confirm", "--output", "json", env=env
        )
        assert result.returncode == 0, result.stdout + result.stderr
        [bundle_dir] = bundle.bundles_of(exports, tenant)
        yield {
            "api": api,
            "env": env,
            "tenant": tenant,
            "before": before,
            "bundle": bundle_dir,
            "sha256": json.loads(result.stdout)["bundle"]["bundle_sha256"],
            "operator": operator,
        }


def _tampered(source: Path, target: Path, *, rehash: bool) -> Path:
    """A copy of the bundle with one device renamed; with ``rehash``, its checksums made consistent again."""
    shutil.copytree(source, target)
    devices = target / "ingestion" / "devices.json"
    rows = json.loads(devices.read_text())
    rows[0]["name"] = "Capteur falsifié"
    devices.write_text(json.dumps(rows))
    if rehash:
        manifest = json.loads((target / "manifest.json").read_text())
        for entry in manifest["files"]:
            entry["sha256"] = hashlib.sha256((target / entry["path"]).read_bytes()).hexdigest()
        sums = "".join(f"{f['sha256']}  {f['path']}\n" for f in sorted(manifest["files"], key=lambda f: f["path"]))
        (target / "SHA256SUMS").write_text(sums)
        manifest["bundle_sha256"] = hashlib.sha256(sums.encode()).hexdigest()
        (target / "manifest.json").write_text(json.dumps(manifest))
    return target


@pytest.mark.timeout(900)
def test_the_commune_moves_back_in_with_the_same_data_and_its_kept_chain(
    offboarded, database, kc_admin, billing_url, tmp_path, returning
) -> None:
    tenant, env, api = offboarded["tenant"], offboarded["env"], offboarded["api"]
    assert snapshot(database.url, tenant["id"])["ingestion.devices"] == []

    # A bundle edited after the export is refused before anything is written.
    edited = _tampered(offboarded["bundle"], tmp_path / "edited", rehash=False)
    refused = socle_tenants("import", str(edited), "--output", "json", env=env)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "lot refusé, rien n'a été importé" in refused.stderr
    assert "ingestion/devices.json ne correspond pas à son sha256 du manifeste" in refused.stderr
    # Even with its checksums recomputed, it is not the bundle the offboarding proof names.
    forged = _tampered(offboarded["bundle"], tmp_path / "forged", rehash=True)
    refused = socle_tenants("import", str(forged), "--bundle-sha256", offboarded["sha256"], env=env)
    assert refused.returncode == 1
    assert "ce n'est pas le lot exporté" in refused.stdout
    current = httpx.get(f"{api}/v1/tenants/{tenant['id']}", headers=offboarded["operator"], timeout=30)
    assert current.json()["tenant"]["status"] == "deleted"

    result = socle_tenants(
        "import", str(offboarded["bundle"]), "--bundle-sha256", offboarded["sha256"], "--output", "json", env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["tenant_status"] == "active"
    assert report["audit_chain"]["verdict"] == "intact"
    assert report["rows"]["ingestion.devices"] == {"rows": 2, "inserted": 2, "now": 2}
    assert report["rows"]["timeseries.readings"] == {"rows": 3, "inserted": 3, "now": 3}
    assert (
        report["rows"]["timeseries.series"]
        == report["rows"]["timeseries.latest"]
        == {"rows": 1, "inserted": 1, "now": 1}
    )
    assert report["rows"]["tenancy.audit_entries"]["inserted"] == 0  # kept on this platform, and the same
    [member] = report["members"]
    assert (member["email"], member["roles"], member["created"]) == (
        first_admin_email(returning),
        ["commune-admin"],
        False,
    )
    assert_same_data(offboarded["before"], snapshot(database.url, tenant["id"]))

    organization = kc_admin.request("GET", f"/organizations/{report['organization_id']}").json()
    assert organization["alias"] == tenant["key"]
    assert organization["enabled"] is True
    assert organization["attributes"]["tenant_id"] == [tenant["id"]]
    members = kc_admin.request("GET", f"/organizations/{report['organization_id']}/members").json()
    assert [m["email"] for m in members] == [first_admin_email(returning)]
    registry = httpx.get(f"{api}/v1/tenants/{tenant['id']}", headers=offboarded["operator"], timeout=30).json()
    assert registry["tenant"]["status"] == "active"
    assert registry["tenant"]["keycloak_organization_id"] == report["organization_id"]
    # Billing's directory lists the restored metering account again (its trigger follows the row).
    listed: set[str] = set()
    for offset in range(0, 10_000, 100):
        page = httpx.get(
            f"{billing_url}/v1/metering-accounts",
            params={"limit": 100, "offset": offset},
            headers=offboarded["operator"],
            timeout=30,
        ).json()
        listed |= {a["tenant_id"] for a in page["items"]}
        if offset + 100 >= page["total"]:
            break
    assert tenant["id"] in listed

    # Once more: nothing to do, no row changes (the chain only records the new verification).
    after = data_rows(snapshot(database.url, tenant["id"]))
    again = socle_tenants("import", str(offboarded["bundle"]), env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "a déjà été importée depuis ce lot" in again.stdout
    assert data_rows(snapshot(database.url, tenant["id"])) == after
    # Another bundle of a commune that exists is refused: an import never replaces a commune.
    other = socle_tenants("import", str(forged), env=env)
    assert other.returncode == 1
    assert "existe déjà sur cette plateforme (statut active)" in other.stdout
    assert data_rows(snapshot(database.url, tenant["id"])) == after


@pytest.mark.timeout(900)
def test_the_commune_moves_to_a_fresh_platform_with_its_chain_restored_verbatim(
    offboarded, database, keycloak, credentials, kc_admin
) -> None:
    tenant = offboarded["tenant"]
    with throwaway_database(database, credentials, SERVICES, prefix="socle_import") as url:
        with no_socle_environment():
            from socle_tenancy.app import create_app as tenancy_app
            from socle_tenancy.config import TenancySettings

            settings = TenancySettings(
                environment="test",
                database_url=url("tenancy", "app"),
                migration_database_url=url("tenancy", "owner"),
                oidc_issuer=keycloak.issuer,
                keycloak_client_secret=credentials["platform_client"],
            )
        with served(tenancy_app(settings)) as api:
            operator = offboarded["operator"]
            assert httpx.post(f"{api}/v1/epcis", json={"siren": DEMO_SIREN}, headers=operator, timeout=30).is_success
            env = _env(api, keycloak, credentials, url)
            result = socle_tenants("import", str(offboarded["bundle"]), "--output", "json", env=env)
            assert result.returncode == 0, result.stdout + result.stderr
            report = json.loads(result.stdout)
            chain = json.loads((offboarded["bundle"] / "tenancy" / "audit_entries.json").read_text())
            assert report["rows"]["tenancy.audit_entries"]["inserted"] == len(chain) > 0
            assert report["audit_chain"]["verdict"] == "intact"
            assert_same_data(offboarded["before"], snapshot(url, tenant["id"]))
            registry = httpx.get(f"{api}/v1/tenants/{tenant['id']}", headers=operator, timeout=30).json()["tenant"]
            epci = httpx.get(f"{api}/v1/tenants/epci-{DEMO_SIREN}", headers=operator, timeout=30).json()["tenant"]
            assert registry["parent_id"] == epci["id"]  # this platform's EPCI
            assert registry["status"] == "active"
