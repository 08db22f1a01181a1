"""``socle-tenants offboard`` end to end on the real PostgreSQL and Keycloak.

The bundle must hold exactly the tenant's rows (checked against what was inserted and
against its own checksums), readable by its owner only (folders 0700, files 0600), and no
run may overwrite an earlier bundle; the other commune must keep all of its rows, the
offboarded tenant must have 0 rows everywhere and no Keycloak organization.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import stat
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from socle_tenancy.domain.offboarding import bundle
from tests.core.test_audit import _chain as audit_chain
from tests.tenancy.domain.declarations.serving import socle_tenants
from tests.tenancy.domain.offboarding.conftest import count_rows, first_admin_email

DATA_TABLES = (
    ("ingestion", "devices", 2),
    ("timeseries", "series", 1),
    ("timeseries", "readings", 3),
    ("timeseries", "latest", 1),
    ("tenancy", "quotas", 1),
)


def private_modes(path: Path) -> dict[str, str]:
    """Every folder and file of a bundle whose mode is not 0700 (folders) or 0600 (files)."""
    wrong = {}
    for item in [path, *path.rglob("*")]:
        mode = stat.S_IMODE(item.stat().st_mode)
        if mode != (0o700 if item.is_dir() else 0o600):
            wrong[str(item.relative_to(path.parent))] = oct(mode)
    return wrong


def check_bundle(path: Path, tenant: dict[str, Any]) -> dict[str, Any]:
    """The manifest's checksums and counts hold, every row belongs to the tenant, only its owner reads it."""
    assert private_modes(path) == {}
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["tenant"]["id"] == tenant["id"]
    files = {f["path"]: f for f in manifest["files"]}
    for entry in manifest["files"]:
        assert hashlib.sha256((path / entry["path"]).read_bytes()).hexdigest() == entry["sha256"]
    sums = (path / "SHA256SUMS").read_text()
    assert hashlib.sha256(sums.encode()).hexdigest() == manifest["bundle_sha256"]
    assert len(sums.splitlines()) == len(files)

    devices = json.loads((path / "ingestion" / "devices.json").read_text())
    assert files["ingestion/devices.json"]["rows"] == len(devices) == 2
    assert {d["tenant_id"] for d in devices} == {tenant["id"]}
    with (path / "timeseries" / "readings.csv").open(newline="") as source:
        readings = list(csv.DictReader(source))
    assert files["timeseries/readings.csv"]["rows"] == len(readings) == 3
    assert {r["tenant_id"] for r in readings} == {tenant["id"]}
    assert sorted(float(r["value"]) for r in readings) == [1.5, 2.5, 3.5]
    # Readings name their series by number; the series name the device and metric.
    series = json.loads((path / "timeseries" / "series.json").read_text())
    assert [(s["metric"], s["unit"]) for s in series] == [("water_level_m", "m")]
    assert series[0]["device_id"] in {d["id"] for d in devices}
    assert {r["series_id"] for r in readings} == {str(series[0]["id"])}
    [latest] = json.loads((path / "timeseries" / "latest.json").read_text())
    assert (latest["series_id"], latest["value"]) == (series[0]["id"], 3.5)
    steps = json.loads((path / "tenancy" / "onboarding_steps.json").read_text())
    assert len(steps) == 6
    assert {s["tenant_id"] for s in steps} == {tenant["id"]}
    assert files["tenancy/quotas.json"]["rows"] == 1
    # Every service's tenant-owned tables were found in the catalogue, not listed by hand.
    assert {"identity/service_accounts.json", "billing/usage_events.json", "tenancy/quotas.json"} <= set(files)
    identity = json.loads((path / "keycloak" / "organization.json").read_text())
    assert identity["organization"]["alias"] == tenant["key"]
    assert [m["email"] for m in identity["members"]] == [tenant["first_admin_email"]]
    assert identity["members"][0]["roles"] == ["commune-admin"]
    registry = json.loads((path / "registry" / "tenant.json").read_text())
    assert registry["tenant"]["id"] == tenant["id"]
    return manifest


def test_a_rehearsal_writes_a_private_verified_bundle_and_deletes_nothing(
    communes, codes, offboard_env, tmp_path, database
) -> None:
    staying = communes[codes.staying]
    exports = tmp_path / "exports"
    result = socle_tenants(
        "offboard", codes.staying, "--export-dir", str(exports), "--output", "json", env=offboard_env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["confirm"] is False
    assert "rien n'a été supprimé" in result.stderr
    assert "ingestion.devices exportée : 2 ligne(s)" in result.stderr
    [first] = bundle.bundles_of(exports, staying)
    assert report["bundle"]["path"] == str(first)
    assert first.name.startswith(f"commune-{codes.staying}-")
    assert stat.S_IMODE(exports.stat().st_mode) == 0o700  # the folder the command created
    manifest = check_bundle(first, {**staying, "first_admin_email": first_admin_email(codes.staying)})
    assert manifest["status_at_export"] == "active"
    assert report["bundle"]["bundle_sha256"] == manifest["bundle_sha256"]
    for service, table, rows in DATA_TABLES:
        assert count_rows(database, service, table, staying["id"]) == rows

    # A second run never replaces the first bundle: it writes its own folder.
    before = {p: p.read_bytes() for p in first.rglob("*") if p.is_file()}
    again = socle_tenants("offboard", codes.staying, "--export-dir", str(exports), "--output", "json", env=offboard_env)
    assert again.returncode == 0, again.stdout + again.stderr
    bundles = bundle.bundles_of(exports, staying)
    assert len(bundles) == 2
    assert bundles[0] == first
    assert {p: p.read_bytes() for p in first.rglob("*") if p.is_file()} == before
    assert private_modes(bundles[1]) == {}


def test_a_bundle_is_never_written_over(communes, codes, offboard_env, tmp_path) -> None:
    staying = communes[codes.staying]
    target = tmp_path / bundle.bundle_name(staying["key"])
    target.mkdir()  # an empty folder that a rename would silently replace
    with pytest.raises(bundle.BundleError, match="un lot n'est jamais écrasé"):
        asyncio.run(bundle.export_bundle(staying, {}, {"members": []}, {}, target, print))
    assert list(target.iterdir()) == []
    assert not target.with_name(target.name + ".partial").exists()


def test_offboarding_resumes_after_a_crash_and_proves_nothing_remains(
    communes, codes, offboard_env, tmp_path, database, tenancy_url, operator, kc_admin
) -> None:
    leaving, staying = communes[codes.leaving], communes[codes.staying]
    tenant_id = leaving["id"]
    api = f"{tenancy_url}/v1/tenants/{tenant_id}"

    # The state a crash leaves after the export, part-way through deletion: offboarding
    # started, the bundle written and verified, ingestion's rows already deleted.
    started = httpx.post(f"{api}/offboarding", json={"reason": "the commune leaves"}, headers=operator, timeout=30)
    assert started.status_code == 200, started.text
    assert started.json()["status"] == "offboarding"
    organization_id = started.json()["keycloak_organization_id"]
    assert kc_admin.request("GET", f"/organizations/{organization_id}").json()["enabled"] is False
    registry = httpx.get(api, headers=operator, timeout=30).json()
    identity = httpx.get(f"{api}/offboarding/identity", headers=operator, timeout=30).json()
    urls = bundle.database_urls(offboard_env)
    bundle_dir = tmp_path / bundle.bundle_name(leaving["key"])
    manifest = asyncio.run(bundle.export_bundle(registry["tenant"], registry, identity, urls, bundle_dir, print))
    asyncio.run(bundle.delete_rows({"ingestion": urls["ingestion"]}, uuid.UUID(tenant_id), manifest, print))
    assert count_rows(database, "ingestion", "devices", tenant_id) == 0

    # The API refuses to mark the tenant deleted while its rows remain.
    early = httpx.post(
        f"{api}/offboarding/completion",
        json={"reason": "too early", "bundle_sha256": manifest["bundle_sha256"]},
        headers=operator,
        timeout=30,
    )
    assert early.status_code == 409, early.text
    assert early.json()["remaining_rows"] == {"tenancy.onboarding_steps": 6, "tenancy.quotas": 1}

    result = socle_tenants(
        "offboard", codes.leaving, "--export-dir", str(tmp_path), "--confirm", "--output", "json", env=offboard_env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "reprise du lot vérifié" in result.stderr
    report = json.loads(result.stdout)
    assert report["bundle"]["bundle_sha256"] == manifest["bundle_sha256"]
    assert report["deleted"]["ingestion.devices"] == 0  # deleted before the crash
    assert report["deleted"]["timeseries.readings"] == 3
    proof = report["proof"]
    assert proof["keycloak_organization"] == "absent"
    assert proof["tenant_status"] == "deleted"
    assert {t: p["rows"] for t, p in proof["tables"].items() if not p["retained"]} == dict.fromkeys(
        [t for t, p in proof["tables"].items() if not p["retained"]], 0
    )
    assert {"ingestion.devices", "timeseries.readings", "tenancy.quotas", "tenancy.onboarding_steps"} <= set(
        proof["tables"]
    )
    check_bundle(bundle_dir, {**leaving, "first_admin_email": first_admin_email(codes.leaving)})

    # Nothing of the tenant remains; the other commune keeps everything.
    for service, table, rows in (*DATA_TABLES, ("tenancy", "onboarding_steps", 6)):
        assert count_rows(database, service, table, tenant_id) == 0
        assert count_rows(database, service, table, staying["id"]) == rows
    found = kc_admin.request("GET", "/organizations", params={"q": f"tenant_id:{tenant_id}"}).json()
    assert found == []
    tenant = httpx.get(api, headers=operator, timeout=30).json()["tenant"]
    assert tenant["status"] == "deleted"
    assert manifest["bundle_sha256"] in tenant["status_reason"]
    assert bundle.bundles_of(tmp_path, leaving) == [bundle_dir]  # the interrupted run's bundle, no other
    [proof_file] = tmp_path.glob(f"commune-{codes.leaving}-*.proof.json")
    assert stat.S_IMODE(proof_file.stat().st_mode) == 0o600
    assert json.loads(proof_file.read_text())["bundle"]["bundle_sha256"] == manifest["bundle_sha256"]
    # The tenant's audit chain is kept (legal retention) and tells the offboarding's story.
    actions = [e["action"] for e in asyncio.run(audit_chain(database, uuid.UUID(tenant_id)))]
    offboarding = [a for a in actions if a.startswith("offboarding.")]
    assert offboarding[0] == "offboarding.started"
    assert {"offboarding.identity_exported", "offboarding.completed"} <= set(offboarding)

    # Once more: already deleted, the proof still holds.
    again = socle_tenants("offboard", codes.leaving, "--export-dir", str(tmp_path), "--confirm", env=offboard_env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "est déjà supprimée" in again.stdout
    assert "organisation Keycloak                    absent" in again.stdout


def test_without_every_service_database_the_export_refuses_to_start(communes, codes, offboard_env, tmp_path) -> None:
    env = {k: v for k, v in offboard_env.items() if k != "SOCLE_BILLING_DATABASE_URL"}
    result = socle_tenants("offboard", codes.staying, "--export-dir", str(tmp_path), "--confirm", env=env)
    assert result.returncode == 2
    assert "définissez SOCLE_BILLING_DATABASE_URL" in result.stdout
    assert not any(tmp_path.iterdir())
