"""The audit log in PostgreSQL: append-only, chained, partitioned, and tampering is detected.

Tampering tests run on a database of their own (provisioned and migrated like the suite's):
a chain broken on purpose must not make the shared database's log look tampered to others.
"By hand" means as the superuser with triggers disabled (``session_replication_role``).
The superuser can also rewrite a chain consistently (cut its tail and roll its head back, or
recompute every hash after an edit): that verifies on its own, and is caught only against
heads signed, or an export made, before.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from socle_core.audit import record, record_detached
from socle_core.auth import system_tenant
from socle_core.db import create_session_maker, tenant_session
from socle_core.migrations import upgrade
from socle_core.provisioning import ServiceRoles, provision_service
from socle_devstack.stack import REPO_ROOT, _with_database
from socle_tenancy.db.migrate import MIGRATIONS
from socle_tenancy.db.models import SCHEMA
from socle_tenancy.domain.audit.chain import Anchor
from socle_tenancy.domain.audit.heads import (
    anchors_of,
    append_records,
    parse_anchor_document,
    read_heads,
    sign_heads,
)
from socle_tenancy.domain.audit.schemas import export_line
from socle_tenancy.domain.audit.services import Filters, stream_entries, verify
from socle_tenancy.domain.audit.signing import HeadSigner, HeadVerifier
from tests.support.local_stack import NO_LOCAL_STACK, describe_local_stack

TRICKY = {
    "quote": 'a "b" c',
    "pipe": "x|y",
    "newline": "l1\nl2\ttab",
    "unicode": "Nîmes — été ✓",
    "nested": [1, {"k": None}],
}


@dataclass
class Scratch:
    name: str
    admin_dsn: str
    app_url: str
    app: AsyncEngine

    async def admin(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.admin_dsn)

    async def tamper(self, statement: str, *args: object) -> None:
        connection = await self.admin()
        try:
            await connection.execute("SET session_replication_role = replica")
            await connection.execute(statement, *args)
        finally:
            await connection.close()


@pytest.fixture(scope="module")
async def scratch(database) -> AsyncIterator[Scratch]:
    name = f"socle_audit_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(database.admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        await provision_service(
            _with_database(database.admin_dsn, name),
            name,
            ServiceRoles.for_service("tenancy"),
            database.credentials["tenancy_migrator"],
            database.credentials["tenancy_app"],
        )
        base = database.url("tenancy", "owner").rsplit("/", 1)[0]
        await asyncio.to_thread(upgrade, MIGRATIONS, f"{base}/{name}", SCHEMA)
        app_url = database.url("tenancy", "app").rsplit("/", 1)[0] + f"/{name}"
        engine = create_async_engine(app_url)
        yield Scratch(name, _with_database(database.admin_dsn, name), app_url, engine)
        await engine.dispose()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _tenant(scratch: Scratch) -> uuid.UUID:
    """A commune in the scratch registry (an audit chain starts only for a tenant it knows)."""
    tenant = uuid.uuid4()
    connection = await scratch.admin()
    try:
        await connection.execute(
            "INSERT INTO tenancy.tenants (id, kind, key, name, insee_code, parent_id) "
            "VALUES ($1, 'commune', $2, 'Test', $3, $1)",
            tenant, f"commune-{tenant.hex[:8]}", tenant.hex[:5],
        )  # fmt: skip
    finally:
        await connection.close()
    return tenant


async def _chain(scratch: Scratch, entries: int = 4) -> uuid.UUID:
    tenant = await _tenant(scratch)
    context = system_tenant(tenant, reason="test")
    for n in range(1, entries + 1):
        await record_detached(
            scratch.app, context, actor=f"user|{n}", action="tests.step", target=None if n % 2 else f"t:{n}",
            outcome="success", details={**TRICKY, "n": n},
        )  # fmt: skip
    return tenant


async def _kinds(scratch: Scratch, tenant: uuid.UUID) -> list[tuple[int | None, str]]:
    verdict = await verify(create_session_maker(scratch.app), [tenant])
    return [(f.seq, f.kind) for f in verdict.findings]


async def test_an_untouched_chain_verifies_and_python_agrees_with_sql_on_every_byte(scratch) -> None:
    tenant = await _chain(scratch, 5)
    verdict = await verify(create_session_maker(scratch.app), [tenant])
    assert verdict.ok, verdict.findings
    assert (verdict.chains, verdict.entries) == (1, 5)


async def test_editing_one_row_by_hand_is_detected(scratch) -> None:
    tenant = await _chain(scratch)
    await scratch.tamper(
        "UPDATE tenancy.audit_entries SET actor = 'someone else' WHERE tenant_id = $1 AND seq = 2", tenant
    )
    assert await _kinds(scratch, tenant) == [(2, "altered")]


async def test_editing_the_details_or_the_time_is_detected(scratch) -> None:
    tenant = await _chain(scratch)
    await scratch.tamper(
        "UPDATE tenancy.audit_entries SET details = details || '{\"n\": 99}' WHERE tenant_id = $1 AND seq = 3", tenant
    )
    await scratch.tamper(
        "UPDATE tenancy.audit_entries SET recorded_at = recorded_at + interval '1 microsecond' "
        "WHERE tenant_id = $1 AND seq = 1",
        tenant,
    )
    assert await _kinds(scratch, tenant) == [(1, "altered"), (3, "altered")]


async def test_rewriting_a_row_with_its_hash_breaks_the_next_link(scratch) -> None:
    """An editor who also recomputes the row's hash is caught by the next entry's prev_hash."""
    tenant = await _chain(scratch)
    await scratch.tamper(
        "UPDATE tenancy.audit_entries SET outcome = 'failure', "
        "hash = sha256(convert_to(tenancy.audit_canonical(prev_hash, seq, tenant_id, recorded_at, actor, action, "
        "target, 'failure', details), 'UTF8')) WHERE tenant_id = $1 AND seq = 2",
        tenant,
    )
    assert await _kinds(scratch, tenant) == [(3, "broken_link")]


async def test_deleting_a_row_is_detected(scratch) -> None:
    tenant = await _chain(scratch)
    await scratch.tamper("DELETE FROM tenancy.audit_entries WHERE tenant_id = $1 AND seq = 2", tenant)
    assert await _kinds(scratch, tenant) == [(3, "missing"), (3, "broken_link")]


async def test_deleting_the_newest_rows_is_detected_by_the_head(scratch) -> None:
    tenant = await _chain(scratch)
    await scratch.tamper("DELETE FROM tenancy.audit_entries WHERE tenant_id = $1 AND seq >= 3", tenant)
    assert await _kinds(scratch, tenant) == [(3, "missing")]


async def test_reordering_rows_is_detected(scratch) -> None:
    tenant = await _chain(scratch)
    await scratch.tamper(
        "UPDATE tenancy.audit_entries SET seq = CASE seq WHEN 2 THEN 3 ELSE 2 END "
        "WHERE tenant_id = $1 AND seq IN (2, 3)",
        tenant,
    )
    kinds = await _kinds(scratch, tenant)
    assert {(2, "altered"), (3, "altered")} <= set(kinds), kinds


async def test_removing_a_chain_head_is_detected(scratch) -> None:
    tenant = await _chain(scratch, 2)
    await scratch.tamper("DELETE FROM tenancy.audit_heads WHERE chain_id = $1", tenant)
    verdict = await verify(create_session_maker(scratch.app))
    assert (None, "no_head") in [(f.seq, f.kind) for f in verdict.findings if f.tenant_id == tenant]


async def test_the_command_exits_non_zero_and_names_the_edited_row(scratch) -> None:
    tenant = await _chain(scratch, 3)
    command = [sys.executable, "-m", "socle_tenancy.audit", "verify", "--tenant", str(tenant)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCLE_")}
    run = await asyncio.to_thread(
        subprocess.run, [*command, "--database-url", scratch.app_url], capture_output=True, text=True, cwd=REPO_ROOT,
        env=env, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "intact: 1 chain(s), 3 entr(y/ies), 0 finding(s)" in run.stdout
    await scratch.tamper(
        "UPDATE tenancy.audit_entries SET action = 'tests.other' WHERE tenant_id = $1 AND seq = 2", tenant
    )
    run = await asyncio.to_thread(
        subprocess.run, [*command, "--database-url", scratch.app_url], capture_output=True, text=True, cwd=REPO_ROOT,
        env=env, timeout=120,
    )  # fmt: skip
    assert run.returncode == 1, run.stdout + run.stderr
    assert f"TAMPERED chain {tenant} entry 2: altered" in run.stdout


async def test_the_command_with_no_setting_finds_the_local_stack_or_says_what_to_set(
    scratch, database, tmp_path
) -> None:
    tenant = await _chain(scratch, 3)
    command = [sys.executable, "-m", "socle_tenancy.audit", "verify", "--tenant", str(tenant)]
    bare = {k: v for k, v in os.environ.items() if not k.startswith("SOCLE_")}
    run = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, cwd=REPO_ROOT,
        env={**bare, "SOCLE_STATE_DIR": NO_LOCAL_STACK}, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert "erreur : réglages manquants ou invalides :\n" in run.stderr
    assert "  SOCLE_TENANCY_DATABASE_URL : manquant\n" in run.stderr
    assert "lancez d'abord `make up`" in run.stderr
    # A running make up stack (here: its description, pointing at the scratch database).
    state = describe_local_stack(
        tmp_path / ".socle", database, "http://127.0.0.1:9/realms/socle", {"tenancy": "http://127.0.0.1:9"},
        name=scratch.name,
    )  # fmt: skip
    run = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, cwd=REPO_ROOT,
        env={**bare, "SOCLE_STATE_DIR": str(state)}, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "intact: 1 chain(s), 3 entr(y/ies), 0 finding(s)" in run.stdout
    assert "SOCLE_TENANCY_DATABASE_URL, SOCLE_TENANCY_OIDC_ISSUER pris de stack.json et secrets.json" in run.stderr


async def test_the_log_is_append_only_even_for_a_role_that_was_granted_everything(scratch, database) -> None:
    """Provisioning re-grants DML on the schema's tables on every run: triggers and policies still refuse."""
    tenant = await _chain(scratch, 2)
    await provision_service(
        scratch.admin_dsn,
        scratch.name,
        ServiceRoles.for_service("tenancy"),
        database.credentials["tenancy_migrator"],
        database.credentials["tenancy_app"],
    )
    partition = f"audit_entries_{tenant.hex}"
    for statement in (
        "UPDATE tenancy.audit_entries SET actor = 'x'",
        "DELETE FROM tenancy.audit_entries",
        "INSERT INTO tenancy.audit_entries SELECT * FROM tenancy.audit_entries",
        "UPDATE tenancy.audit_heads SET last_seq = last_seq + 1",
        "DELETE FROM tenancy.audit_heads",
        "TRUNCATE tenancy.audit_entries",
        f"TRUNCATE tenancy.{partition}",
        f"UPDATE tenancy.{partition} SET actor = 'x'",
    ):
        async with scratch.app.connect() as connection:
            await connection.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant)})
            with pytest.raises(DBAPIError, match=r"append-only|permission denied"):
                await connection.execute(text(statement))
    assert await _kinds(scratch, tenant) == []


async def test_partitions_are_per_tenant_and_month_and_each_is_isolated(scratch) -> None:
    tenant = await _chain(scratch, 1)
    connection = await scratch.admin()
    try:
        rows = await connection.fetch(
            "SELECT c.relname, c.relkind::text AS kind, c.relrowsecurity AS rls, c.relforcerowsecurity AS forced, "
            "pg_get_userbyid(c.relowner) AS owner, "
            "(SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) AS policies, "
            "has_table_privilege('socle_tenancy_app', c.oid, 'SELECT') AS app_reads "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'tenancy' AND c.relkind IN ('r', 'p') AND c.relname LIKE $1 ORDER BY c.relname",
            f"audit_entries_{tenant.hex}%",
        )
    finally:
        await connection.close()
    assert [r["kind"] for r in rows] == ["p", "r", "r"]  # the tenant, this month, next month
    assert all(r["rls"] and r["forced"] and r["policies"] == 1 and not r["app_reads"] for r in rows), rows
    assert {r["owner"] for r in rows} == {"socle_tenancy_owner"}
    # Through the parent, the application role sees one tenant's chain, in that tenant's context only.
    other = await _chain(scratch, 1)
    async with scratch.app.connect() as connection:
        await connection.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant)})
        seen = set((await connection.execute(text("SELECT tenant_id FROM tenancy.audit_entries"))).scalars())
    assert seen == {tenant}
    assert other not in seen


async def test_concurrent_writers_get_one_gapless_chain(scratch) -> None:
    tenant = await _tenant(scratch)
    maker = create_session_maker(scratch.app)

    async def write(n: int) -> int:
        async with tenant_session(maker, system_tenant(tenant, reason="test")) as session:
            return await record(session, tenant, actor=f"writer-{n}", action="tests.concurrent")

    seqs = await asyncio.gather(*(write(n) for n in range(12)))
    assert sorted(seqs) == list(range(1, 13))
    assert await _kinds(scratch, tenant) == []


# -- a consistent rewrite, and the anchors kept outside the database ------------------------

KEY = "test-audit-heads-signing-key-" + "k" * 24


async def _signed_heads(scratch: Scratch, path: Path) -> HeadSigner:
    """What the periodic publication appends to the heads directory, now."""
    signer = HeadSigner(SecretStr(KEY))
    records = sign_heads(signer, await read_heads(create_session_maker(scratch.app)), dt.datetime.now(dt.UTC))
    await asyncio.to_thread(append_records, path, records)
    return signer


async def _export(scratch: Scratch, tenant: uuid.UUID, path: Path) -> None:
    """What ``GET /v1/audit/export`` streams, saved by the auditor."""
    lines = [
        json.dumps(export_line(row), ensure_ascii=False)
        async for row in stream_entries(
            create_session_maker(scratch.app), system_tenant(tenant, reason="test"), Filters()
        )
    ]
    await asyncio.to_thread(path.write_text, "\n".join(lines) + "\n", encoding="utf-8")


def _anchors(path: Path, signer: HeadSigner) -> list[Anchor]:
    return anchors_of(parse_anchor_document(path.read_text()), HeadVerifier([signer.public_key]))


async def _cut_tail_and_roll_head_back(scratch: Scratch, tenant: uuid.UUID, keep: int) -> None:
    await scratch.tamper("DELETE FROM tenancy.audit_entries WHERE tenant_id = $1 AND seq > $2", tenant, keep)
    await scratch.tamper(
        "UPDATE tenancy.audit_heads h SET last_seq = e.seq, last_hash = e.hash FROM tenancy.audit_entries e "
        "WHERE h.chain_id = $1 AND e.tenant_id = $1 AND e.seq = $2",
        tenant,
        keep,
    )


async def _edit_and_recompute(scratch: Scratch, tenant: uuid.UUID, seq: int) -> None:
    """Edit an entry, then recompute every hash after it and the head: the chain is consistent again."""
    await scratch.tamper(
        "UPDATE tenancy.audit_entries SET actor = 'someone else' WHERE tenant_id = $1 AND seq = $2", tenant, seq
    )
    await scratch.tamper(
        f"""
        DO $$ DECLARE r record; prev bytea; digest bytea; BEGIN
          SELECT hash INTO prev FROM tenancy.audit_entries WHERE tenant_id = '{tenant}' AND seq = {seq - 1};
          FOR r IN SELECT * FROM tenancy.audit_entries WHERE tenant_id = '{tenant}' AND seq >= {seq} ORDER BY seq LOOP
            digest := sha256(convert_to(tenancy.audit_canonical(prev, r.seq, r.tenant_id, r.recorded_at, r.actor,
              r.action, r.target, r.outcome, r.details), 'UTF8'));
            UPDATE tenancy.audit_entries SET prev_hash = prev, hash = digest
              WHERE tenant_id = r.tenant_id AND seq = r.seq;
            prev := digest;
          END LOOP;
          UPDATE tenancy.audit_heads SET last_hash = prev WHERE chain_id = '{tenant}';
        END $$
        """
    )


async def test_a_cut_tail_with_its_head_rolled_back_verifies_but_not_against_a_signed_head(scratch, tmp_path) -> None:
    tenant = await _chain(scratch, 5)
    heads = tmp_path / "audit-heads-2026-11.jsonl"
    signer = await _signed_heads(scratch, heads)
    await _cut_tail_and_roll_head_back(scratch, tenant, keep=3)

    assert await _kinds(scratch, tenant) == []  # consistent: the database alone cannot tell
    verdict = await verify(create_session_maker(scratch.app), [tenant], _anchors(heads, signer))
    assert [(f.seq, f.kind) for f in verdict.findings] == [(5, "anchor_missing")]
    assert "s'arrête maintenant à l'entrée 3" in verdict.findings[0].detail
    assert "la tête signée le" in verdict.findings[0].detail


async def test_a_chain_recomputed_after_an_edit_verifies_but_not_against_a_signed_head_or_export(
    scratch, tmp_path
) -> None:
    tenant = await _chain(scratch, 5)
    heads, export = tmp_path / "heads.jsonl", tmp_path / "export.jsonl"
    signer = await _signed_heads(scratch, heads)
    await _export(scratch, tenant, export)
    await _edit_and_recompute(scratch, tenant, seq=2)

    assert await _kinds(scratch, tenant) == []
    maker = create_session_maker(scratch.app)
    against_heads = await verify(maker, [tenant], _anchors(heads, signer))
    assert [(f.seq, f.kind) for f in against_heads.findings] == [(5, "anchor_mismatch")]
    against_export = await verify(maker, [tenant], _anchors(export, signer))
    assert [(f.seq, f.kind) for f in against_export.findings] == [(s, "anchor_mismatch") for s in (2, 3, 4, 5)]


async def test_verify_against_on_the_command_line(scratch, tmp_path) -> None:
    tenant = await _chain(scratch, 4)
    heads, export = tmp_path / "heads.jsonl", tmp_path / "export.jsonl"
    signer = await _signed_heads(scratch, heads)
    await _export(scratch, tenant, export)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCLE_")}

    async def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "socle_tenancy.audit", "verify", "--tenant", str(tenant), *args]
        return await asyncio.to_thread(
            subprocess.run, [*command, "--database-url", scratch.app_url], capture_output=True, text=True,
            cwd=REPO_ROOT, env=env, timeout=120,
        )  # fmt: skip

    key = ("--public-key", signer.public_key_b64)
    intact = await run("--against", str(heads), "--against", str(export), *key)
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert "intact: 1 chain(s), 4 entr(y/ies), against 5 anchor(s), 0 finding(s)" in intact.stdout

    await _cut_tail_and_roll_head_back(scratch, tenant, keep=2)
    assert (await run()).returncode == 0  # the database alone says intact
    cut = await run("--against", str(heads), *key)
    assert cut.returncode == 1, cut.stdout + cut.stderr
    assert f"TAMPERED chain {tenant} entry 4: anchor_missing" in cut.stdout
    from_export = await run("--against", str(export))  # an export is the auditor's own copy: no key needed
    assert from_export.returncode == 1
    assert f"TAMPERED chain {tenant} entry 3: anchor_missing" in from_export.stdout

    # A signed head edited after signing, or checked without the key, is refused, not trusted.
    edited = tmp_path / "edited.jsonl"
    lines = [json.loads(line) for line in heads.read_text().splitlines()]
    edited.write_text("\n".join(json.dumps(line | {"seq": 2} if line["chain_id"] == str(tenant) else line)
                                 for line in lines))  # fmt: skip
    forged = await run("--against", str(edited), *key)
    assert forged.returncode == 2
    assert "la signature ne correspond pas" in forged.stderr
    unkeyed = await run("--against", str(heads))
    assert unkeyed.returncode == 2
    assert "clé publique" in unkeyed.stderr
