"""Every tenant-owned table of every service ships with RLS enabled, forced and a policy.

A table is tenant-owned when it has a ``tenant_id`` column. A migration that creates one
without ``socle_core.migrations.tenant_owned_table`` (or ``enable_tenant_isolation``) fails here.
"""

from __future__ import annotations

import asyncpg

from socle_devstack.stack import DATABASE, SERVICES, Database, _with_database

CATALOGUE = """
SELECT n.nspname AS schema, c.relname AS table, c.relrowsecurity AS rls, c.relforcerowsecurity AS forced,
       (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) AS policies,
       pg_get_userbyid(c.relowner) AS owner
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY($1::text[])
  AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
ORDER BY 1, 2
"""


async def test_every_tenant_owned_table_has_rls_enabled_forced_and_a_policy(database: Database) -> None:
    connection = await asyncpg.connect(_with_database(database.admin_dsn, DATABASE))
    try:
        rows = await connection.fetch(CATALOGUE, list(SERVICES))
    finally:
        await connection.close()
    assert {r["table"] for r in rows} >= {"devices", "readings", "usage_events", "service_accounts"}
    escaped = [f"{r['schema']}.{r['table']}" for r in rows if not (r["rls"] and r["forced"] and r["policies"])]
    assert escaped == [], f"tenant-owned tables without RLS+FORCE+policy: {escaped}"
    wrong_owner = [f"{r['schema']}.{r['table']}" for r in rows if r["owner"] != f"socle_{r['schema']}_owner"]
    assert wrong_owner == []
