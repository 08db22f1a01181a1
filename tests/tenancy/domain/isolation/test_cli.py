"""``socle-isolation-report`` on a deliberately broken database: the violation is named, exit 1.

The broken table lives in a throw-away database of the test cluster (the services' roles,
schemas and migrations, then RLS disabled on ``ingestion.devices``), dropped afterwards:
the shared ``socle`` database stays intact for every other test. The report names who
probed whom, with which statement, and what came back, in French; an auditor verifies it
with the public key alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from socle_core.audit import record_detached
from socle_devstack.stack import REPO_ROOT
from socle_tenancy.domain.isolation import signing
from socle_tenancy.domain.isolation.services import dsn
from tests.support.databases import throwaway_database
from tests.support.local_stack import NO_LOCAL_STACK

KEY = signing.generate_pem()
BROKEN_SERVICES = ("tenancy", "ingestion")


@pytest.fixture(scope="module")
def broken_database(database, credentials) -> Iterator[dict[str, str]]:
    with throwaway_database(database, credentials, BROKEN_SERVICES, prefix="socle_broken") as url:

        async def break_it() -> None:
            connection = await asyncpg.connect(dsn(url("ingestion", "owner")))
            try:
                await connection.execute("ALTER TABLE ingestion.devices DISABLE ROW LEVEL SECURITY")
            finally:
                await connection.close()

        asyncio.run(break_it())
        yield {s: url(s, "app") for s in BROKEN_SERVICES}


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith("SOCLE_")}
    base["SOCLE_STATE_DIR"] = NO_LOCAL_STACK
    return subprocess.run(
        [sys.executable, "-m", "socle_tenancy.domain.isolation", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=600,
        check=False,
    )


@pytest.mark.timeout(600)
def test_a_table_with_rls_disabled_is_named_with_prober_target_and_evidence(broken_database, tmp_path: Path) -> None:
    env = {f"SOCLE_{s.upper()}_DATABASE_URL": u for s, u in broken_database.items()}
    env |= {"SOCLE_TENANCY_REPORT_SIGNING_KEY": KEY, "SOCLE_TENANCY_ENVIRONMENT": "test"}
    out, page = tmp_path / "report.json", tmp_path / "report.html"
    result = _run(["run", "--json", str(out), "--html", str(page)], env)
    assert result.returncode == 1, result.stderr
    assert "verdict : fail (ÉCHEC)" in result.stderr
    assert (
        "VIOLATION [catalogue] ingestion.devices : la sécurité au niveau des lignes (RLS) est DÉSACTIVÉE"
        in result.stderr
    )

    report = json.loads(out.read_text())
    assert report["verdict"] == "fail"
    tenants = {t["id"]: t["key"] for t in report["sample"]["tenants"]}
    assert all(t["source"] == "synthetic" for t in report["sample"]["tenants"])  # an empty registry
    catalogue = [v for v in report["violations"] if v["check"] == "catalogue"]
    assert [(v["subject"], v["detail"]) for v in catalogue] == [
        ("ingestion.devices", "la sécurité au niveau des lignes (RLS) est DÉSACTIVÉE")
    ]
    # The live probes see it too: with RLS off, each synthetic tenant reads the other's probe row.
    reads = [
        v
        for v in report["violations"]
        if v["check"] == "database_probe"
        and v["subject"] == "ingestion.devices"
        and "lisible(s) dans le contexte" in v["detail"]
    ]
    assert len(reads) == 2, report["violations"]
    for violation in reads:
        prober, target = violation["prober"], violation["target"]
        assert prober["id"] != target["id"]
        assert {prober["id"]: prober["key"], target["id"]: target["key"]}.items() <= tenants.items()
        # Each direction reads the other's probe row (and the one its own INSERT probe wrongly added).
        rows = violation["evidence"]["rows_read"]
        assert rows >= 1
        assert (
            violation["detail"] == f"{rows} ligne(s) de {target['key']} lisible(s) dans le contexte de {prober['key']}"
        )
        assert violation["request"] == (
            f'SELECT count(*) FROM "ingestion"."devices" WHERE tenant_id = \'{target["id"]}\' — '
            f"dans le contexte app.tenant_id = {prober['id']} ({prober['key']})"
        )
        keys = violation["evidence"]["primary_keys"]
        assert len(keys) == rows
        assert all(set(json.loads(key)) == {"id"} for key in keys)  # the rows' primary keys only: no tenant data
        assert f"(sondeur {prober['key']}, cible {target['key']})" in result.stderr
    no_context = [v for v in report["violations"] if "sans contexte de collectivité" in v["detail"]]
    assert [v["subject"] for v in no_context] == ["ingestion.devices"]
    assert "preuve : " in result.stderr
    assert not [v for v in report["violations"] if v["subject"] == "tenancy.quotas"]

    html = page.read_text()
    assert "<html lang='fr'>" in html
    assert "Verdict : ÉCHEC" in html
    assert reads[0]["detail"] in html
    for english in ("Verdict:", "Violations found", "row-level security is"):
        assert english not in html

    public = tmp_path / "public.pem"
    printed = _run(["public-key"], {"SOCLE_TENANCY_REPORT_SIGNING_KEY": KEY})
    assert printed.returncode == 0, printed.stderr
    public.write_text(printed.stdout)
    assert "PRIVATE" not in printed.stdout
    verified = _run(["verify", str(out), "--public-key", str(public)], {})  # the public key only
    assert verified.returncode == 0, verified.stderr
    assert "signature valide (Ed25519" in verified.stdout
    other = tmp_path / "other.pem"
    other.write_text(signing.public_key_pem(signing.private_key_from_pem(signing.generate_pem())))
    refused = _run(["verify", str(out), "--public-key", str(other)], {})
    assert refused.returncode == 1
    assert "signé avec une autre clé" in refused.stderr
    edited = json.loads(out.read_text())
    edited["violations"] = []
    edited["verdict"] = "pass"
    (tmp_path / "edited.json").write_text(json.dumps(edited))
    forged = _run(["verify", str(tmp_path / "edited.json"), "--public-key", str(public)], {})
    assert forged.returncode == 1
    assert "modifié après sa signature" in forged.stderr


def test_without_a_usable_signing_key_the_command_refuses_to_run(broken_database, tmp_path: Path) -> None:
    env = {"SOCLE_TENANCY_DATABASE_URL": broken_database["tenancy"], "SOCLE_TENANCY_ENVIRONMENT": "production"}
    missing = _run(["run"], env)
    assert missing.returncode == 2
    assert "aucune clé de signature du rapport : définissez SOCLE_TENANCY_REPORT_SIGNING_KEY" in missing.stderr
    dev = _run(["run"], {**env, "SOCLE_TENANCY_REPORT_SIGNING_KEY": signing.generate_pem("dev-only pile locale")})
    assert dev.returncode == 2
    assert "une clé de signature de développement est refusée quand environment=production" in dev.stderr
    hmac = _run(["run"], {**env, "SOCLE_TENANCY_REPORT_SIGNING_KEY": "k" * 48})
    assert hmac.returncode == 2
    assert "doit être une clé privée Ed25519 au format PEM" in hmac.stderr
    unreadable = _run(["verify", str(tmp_path / "absent.json"), "--public-key", str(tmp_path / "absent.pem")], {})
    assert unreadable.returncode == 2
    assert "impossible de lire la clé publique" in unreadable.stderr


def test_without_json_file_the_standard_output_is_the_report_alone(broken_database) -> None:
    """The audit chain's verification logs per chain: none of it may mix into the JSON on stdout."""

    async def one_audit_entry() -> None:
        engine = create_async_engine(broken_database["tenancy"])
        try:
            await record_detached(engine, None, actor="tests", action="tests.entry", outcome="success")
        finally:
            await engine.dispose()

    asyncio.run(one_audit_entry())
    env = {f"SOCLE_{s.upper()}_DATABASE_URL": u for s, u in broken_database.items()}
    env |= {"SOCLE_TENANCY_REPORT_SIGNING_KEY": KEY, "SOCLE_TENANCY_ENVIRONMENT": "test"}
    result = _run(["run"], env)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["audit_chain"]["status"] == "verified"
    assert report["audit_chain"]["chains"] >= 1
