"""``socle-isolation-report`` on a deliberately broken database: the violation is listed, exit 1.

The broken table lives in a throw-away database of the test cluster (the services' roles,
schemas and migrations, then RLS disabled on ``ingestion.devices``), dropped afterwards:
the shared ``socle`` database stays intact for every other test.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from socle_core.migrations import upgrade
from socle_core.provisioning import ServiceRoles, provision_service
from socle_devstack.stack import REPO_ROOT, _with_database
from socle_tenancy.domain.isolation.services import dsn

KEY = "test-" + secrets.token_urlsafe(40)
BROKEN_SERVICES = ("tenancy", "ingestion")


@pytest.fixture(scope="module")
def broken_database(database, credentials) -> Iterator[dict[str, str]]:
    name = f"socle_broken_{uuid.uuid4().hex[:8]}"
    admin = _with_database(database.admin_dsn, name)

    async def create() -> None:
        connection = await asyncpg.connect(database.admin_dsn)
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()
        for service in BROKEN_SERVICES:
            await provision_service(
                admin,
                name,
                ServiceRoles.for_service(service),
                credentials[f"{service}_migrator"],
                credentials[f"{service}_app"],
            )

    async def drop() -> None:
        connection = await asyncpg.connect(database.admin_dsn)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()

    def url(service: str, kind: str) -> str:
        return database.url(service, kind).rsplit("/", 1)[0] + f"/{name}"

    asyncio.run(create())
    try:
        for service in BROKEN_SERVICES:
            migrations = REPO_ROOT / "services" / service / "src" / f"socle_{service}" / "db" / "migrations"
            upgrade(migrations, url(service, "owner"), service)

        async def break_it() -> None:
            connection = await asyncpg.connect(dsn(url("ingestion", "owner")))
            try:
                await connection.execute("ALTER TABLE ingestion.devices DISABLE ROW LEVEL SECURITY")
            finally:
                await connection.close()

        asyncio.run(break_it())
        yield {s: url(s, "app") for s in BROKEN_SERVICES}
    finally:
        asyncio.run(drop())


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith("SOCLE_")}
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
def test_a_table_with_rls_disabled_is_reported_and_the_command_fails(broken_database, tmp_path: Path) -> None:
    env = {f"SOCLE_{s.upper()}_DATABASE_URL": u for s, u in broken_database.items()}
    env |= {"SOCLE_TENANCY_REPORT_SIGNING_KEY": KEY, "SOCLE_TENANCY_ENVIRONMENT": "test"}
    out, page = tmp_path / "report.json", tmp_path / "report.html"
    result = _run(["run", "--json", str(out), "--html", str(page)], env)
    assert result.returncode == 1, result.stderr
    assert "verdict: fail" in result.stderr
    assert "VIOLATION [catalogue] ingestion.devices: row-level security is DISABLED" in result.stderr

    report = json.loads(out.read_text())
    assert report["verdict"] == "fail"
    details = {(v["check"], v["subject"], v["detail"]) for v in report["violations"]}
    assert ("catalogue", "ingestion.devices", "row-level security is DISABLED") in details
    # The live probes see it too: with RLS off, one synthetic tenant reads the other's probe row.
    leaks = [d for c, s, d in details if c == "database_probe" and s == "ingestion.devices"]
    assert any("readable with the context of" in d for d in leaks), leaks
    assert any("readable with no tenant context" in d for d in leaks), leaks
    assert all(t["source"] == "synthetic" for t in report["sample"]["tenants"])  # an empty registry
    assert not [v for v in report["violations"] if v["subject"] == "tenancy.quotas"]
    assert "Verdict: FAIL" in page.read_text()

    verified = _run(["verify", str(out)], {"SOCLE_TENANCY_REPORT_SIGNING_KEY": KEY})
    assert verified.returncode == 0, verified.stderr


def test_without_a_signing_key_or_with_a_dev_key_the_command_refuses_to_run(broken_database) -> None:
    env = {"SOCLE_TENANCY_DATABASE_URL": broken_database["tenancy"], "SOCLE_TENANCY_ENVIRONMENT": "production"}
    missing = _run(["run"], env)
    assert missing.returncode == 2
    assert "SOCLE_TENANCY_REPORT_SIGNING_KEY" in missing.stderr
    dev = _run(["run"], {**env, "SOCLE_TENANCY_REPORT_SIGNING_KEY": "dev-only-" + "k" * 40})
    assert dev.returncode == 2
    assert "development-only report signing key is refused when environment=production" in dev.stderr
    short = _run(["run"], {**env, "SOCLE_TENANCY_REPORT_SIGNING_KEY": "short"})
    assert short.returncode == 2
    assert "at least 32 characters" in short.stderr
