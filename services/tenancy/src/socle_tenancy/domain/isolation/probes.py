# ruff: noqa: S608  (every name in built SQL comes from pg_catalog and is quoted; values are bound)
"""Live probes through each service's application role, in one transaction that is rolled back.

For every tenant of the sample, the probe first writes a probe row of its own into every
tenant-owned table (built from the columns' types, defaults and CHECK/foreign-key
constraints), so every tenant has something to hide. Then, for every ordered pair (A, B)
and every table, with A's context: reading B's rows finds none (beyond rows B shared with A
by a grant), updating and deleting them touches none, inserting a row with B's tenant_id is
refused by WITH CHECK, and B still has all its rows afterwards. With no context at all,
nothing is visible. Everything is rolled back: the report leaves no data behind.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from socle_tenancy.domain.isolation.catalogue import sharing_branches

COLUMNS_SQL = """
SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, t.typcategory::text AS category,
       t.typtype::text AS typtype, a.atttypid AS type_oid, a.attnotnull AS not_null, a.atthasdef AS has_default,
       a.attidentity::text AS identity, a.attgenerated::text AS generated
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
"""

CONSTRAINTS_SQL = """
SELECT con.contype::text AS type, pg_get_constraintdef(con.oid) AS definition,
       ARRAY(SELECT attname::text FROM pg_attribute WHERE attrelid = con.conrelid AND attnum = ANY(con.conkey))
         AS columns,
       con.confrelid::regclass::text AS referenced,
       ARRAY(SELECT attname::text FROM pg_attribute WHERE attrelid = con.confrelid AND attnum = ANY(con.confkey))
         AS referenced_columns
FROM pg_constraint con WHERE con.conrelid = $1::regclass AND con.contype IN ('c', 'f')
"""

_CHOICE = re.compile(
    r"\(?\(?\"?(?P<col>[a-z_][a-z0-9_]*)\"?\)? = (?:ANY \(ARRAY\[)?(?P<lit>'(?:[^']|'')*'(?:::[a-z ]+)?)"
)
_RLS_REFUSED = "42501"
PARTITION_INSERT = "partition : les insertions sont sondées par la table parente"
_PROBE_TAG = "isolation-probe"


@dataclass(frozen=True)
class ProbeTenant:
    id: uuid.UUID
    key: str
    source: str  # "registry" or "synthetic"

    def who(self) -> dict[str, str]:
        return {"id": str(self.id), "key": self.key}


def finding(
    detail: str,
    *,
    prober: dict[str, str] | None = None,
    target: dict[str, str] | None = None,
    request: str | None = None,
    evidence: Any = None,
) -> dict[str, Any]:
    """One violation as an auditor judges it: what, who probed whom, with which request, what came back."""
    return {"detail": detail, "prober": prober, "target": target, "request": request, "evidence": evidence}


def quote(schema: str, table: str) -> str:
    return '"' + schema.replace('"', '""') + '"."' + table.replace('"', '""') + '"'


async def _set_tenant(connection: asyncpg.Connection, tenant: uuid.UUID | None) -> None:
    await connection.execute("SELECT set_config('app.tenant_id', $1, true)", str(tenant) if tenant else "")


def _affected(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


async def _value_sql(connection: asyncpg.Connection, column: dict[str, Any], fixed: dict[str, str]) -> str | None:
    """An SQL expression giving a plausible value of this column, or None when there is none."""
    if column["name"] in fixed:
        return fixed[column["name"]]
    cast = column["type"]
    if column["typtype"] == "e":
        label = await connection.fetchval(
            "SELECT enumlabel FROM pg_enum WHERE enumtypid = $1 ORDER BY enumsortorder LIMIT 1", column["type_oid"]
        )
        return None if label is None else "'" + label.replace("'", "''") + f"'::{cast}"
    by_type = {
        "uuid": "gen_random_uuid()",
        "boolean": "false",
        "json": "'{}'::json",
        "jsonb": "'{}'::jsonb",
        "bytea": "'\\x'::bytea",
        "inet": "'127.0.0.1'::inet",
        "interval": "'1 hour'::interval",
    }
    if cast in by_type:
        return by_type[cast]
    category = column["category"]
    if category == "S":  # text, varchar(n), char(n): unique enough, within the length limit
        length = re.search(r"\((\d+)\)", cast)
        size = int(length.group(1)) if length else 48
        return f"left('{_PROBE_TAG}-' || md5(random()::text), {size})::{cast}"
    if category == "N":
        return f"(1 + floor(random() * 30000))::{cast}"  # within smallint too
    if category == "D":
        return f"now()::{cast}"
    if category == "A":
        return f"'{{}}'::{cast}"
    return None


async def _row_builder(
    connection: asyncpg.Connection, schema: str, table: str
) -> tuple[list[str], list[str], str | None]:
    """Columns and value expressions of a probe row (``$1`` is the tenant), or why none can be built."""
    qualified = quote(schema, table)
    columns = [dict(c) for c in await connection.fetch(COLUMNS_SQL, qualified)]
    constraints = [dict(c) for c in await connection.fetch(CONSTRAINTS_SQL, qualified)]
    fixed: dict[str, str] = {"tenant_id": "$1::uuid"}
    for con in constraints:
        if con["type"] == "c":
            match = _CHOICE.search(con["definition"])
            if match and match.group("col") not in fixed:
                fixed[match.group("col")] = match.group("lit")
        elif con["type"] == "f" and len(con["columns"]) == 1 and con["columns"][0] != "tenant_id":
            # A parent row of the same tenant, visible through RLS in the current context.
            ref_col = con["referenced_columns"][0].replace('"', '""')
            fixed.setdefault(con["columns"][0], f'(SELECT "{ref_col}" FROM {con["referenced"]} LIMIT 1)')
    names, values = [], []
    for column in columns:
        required = column["not_null"] and not column["has_default"] and not column["identity"]
        if column["generated"] or not (required or column["name"] == "tenant_id"):
            continue
        value = await _value_sql(connection, column, fixed)
        if value is None:
            return [], [], f"aucune valeur de sonde pour la colonne {column['name']} de type {column['type']}"
        names.append('"' + column["name"].replace('"', '""') + '"')
        values.append(value)
    return names, values, None


def _insert_sql(schema: str, table: str, names: list[str], values: list[str]) -> str:
    return f"INSERT INTO {quote(schema, table)} ({', '.join(names)}) VALUES ({', '.join(values)})"


async def _insert_probe_rows(
    connection: asyncpg.Connection, tables: list[dict[str, Any]], tenants: list[ProbeTenant]
) -> None:
    """One probe row per tenant and table; tables whose parent row is missing are retried after it."""
    for tenant in tenants:
        await _set_tenant(connection, tenant.id)
        pending = [t for t in tables if t.get("insert_sql")]
        for _ in range(len(pending) + 1):
            retry = []
            for table in pending:
                try:
                    async with connection.transaction():
                        await connection.execute(table["insert_sql"], tenant.id)
                    table["probe_rows_inserted"] += 1
                except asyncpg.ForeignKeyViolationError as exc:
                    table["insert_failures"][str(tenant.id)] = _reason(exc)
                    retry.append(table)
                except asyncpg.PostgresError as exc:
                    table["insert_failures"][str(tenant.id)] = _reason(exc)
                else:
                    table["insert_failures"].pop(str(tenant.id), None)
            if len(retry) == len(pending):
                break
            pending = retry


def _reason(exc: asyncpg.PostgresError) -> str:
    return f"{exc.sqlstate}: {str(exc).splitlines()[0][:200]}"


async def _count(connection: asyncpg.Connection, sql: str, *args: Any) -> int:
    return int(await connection.fetchval(sql, *args))


PRIMARY_KEY_SQL = """
SELECT a.attname::text FROM pg_index i
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey::int2[])
WHERE i.indrelid = $1::regclass AND i.indisprimary ORDER BY array_position(i.indkey::int2[], a.attnum)
"""
#: Rows named as evidence of a leak, by primary key only: an auditor reads no tenant data.
EVIDENCE_ROWS = 5


async def _visible_keys(connection: asyncpg.Connection, qualified: str, target: uuid.UUID) -> list[str]:
    """The primary keys of the target's rows the current context can read (a few, as evidence)."""
    columns = [r[0] for r in await connection.fetch(PRIMARY_KEY_SQL, qualified)] or ["tenant_id"]
    quoted = ['"' + c.replace('"', '""') + '"' for c in columns]
    pairs = ", ".join("'" + c.replace("'", "''") + f"', t.{q}" for c, q in zip(columns, quoted, strict=True))
    rows = await connection.fetch(
        f"SELECT jsonb_build_object({pairs})::text FROM {qualified} t WHERE t.tenant_id = $1 LIMIT {EVIDENCE_ROWS}",
        target,
    )
    return [r[0] for r in rows]


async def _probe_pair(
    connection: asyncpg.Connection, table: dict[str, Any], actor: ProbeTenant, target: ProbeTenant, before: int
) -> dict[str, Any]:
    qualified = quote(table["schema"], table["table"])
    shared = sharing_branches(table["policies"])
    violations: list[dict[str, Any]] = []
    context = f"dans le contexte app.tenant_id = {actor.id} ({actor.key})"

    def violation(detail: str, request: str, evidence: Any) -> None:
        violations.append(
            finding(
                detail, prober=actor.who(), target=target.who(), request=f"{request} — {context}", evidence=evidence
            )
        )

    await _set_tenant(connection, actor.id)
    select = f"SELECT count(*) FROM {qualified} WHERE tenant_id = $1"
    visible = await _count(connection, select, target.id)
    unshared = visible
    if shared and visible:
        legit = " OR ".join(f"({b})" for b in shared)
        try:
            async with connection.transaction():
                unshared = await _count(
                    connection,
                    f"SELECT count(*) FROM {qualified} WHERE tenant_id = $1 AND NOT COALESCE(({legit}), false)",
                    target.id,
                )
        except asyncpg.PostgresError as exc:  # cannot tell shared rows apart: count them all as leaked
            violation(f"impossible d'évaluer les politiques de partage : {_reason(exc)}", legit, None)
    if unshared:
        violation(
            f"{unshared} ligne(s) de {target.key} lisible(s) dans le contexte de {actor.key}",
            select.replace("$1", f"'{target.id}'"),
            {"rows_read": unshared, "primary_keys": await _visible_keys(connection, qualified, target.id)},
        )
    update_sql = f"UPDATE {qualified} SET tenant_id = $2 WHERE tenant_id = $1"
    update = await _write_probe(connection, update_sql, target.id, actor.id)
    delete_sql = f"DELETE FROM {qualified} WHERE tenant_id = $1"
    delete = await _write_probe(connection, delete_sql, target.id)
    for verb, sql, outcome in (("UPDATE", update_sql, update), ("DELETE", delete_sql, delete)):
        if outcome["affected"]:
            violation(
                f"{verb} a touché {outcome['affected']} ligne(s) de {target.key} dans le contexte de {actor.key}",
                sql.replace("$1", f"'{target.id}'").replace("$2", f"'{actor.id}'"),
                {"rows_affected": outcome["affected"]},
            )
    insert: dict[str, Any] = {"refused": None, "by": None, "skipped": None}
    if table.get("insert_sql"):
        try:
            async with connection.transaction():
                await connection.execute(table["insert_sql"], target.id)
            insert["refused"] = False
            violation(
                f"INSERT d'une ligne au tenant_id de {target.key} accepté dans le contexte de {actor.key}",
                table["insert_sql"].replace("$1::uuid", f"'{target.id}'::uuid"),
                {"inserted": 1},
            )
        except asyncpg.PostgresError as exc:
            insert["refused"] = True
            insert["by"] = "row-level security" if exc.sqlstate == _RLS_REFUSED else _reason(exc)
    else:
        insert["skipped"] = table.get("insert_skipped") or PARTITION_INSERT
    await _set_tenant(connection, target.id)
    after = await _count(connection, f"SELECT count(*) FROM {qualified} WHERE tenant_id = $1", target.id)
    if after != before:
        violation(
            f"{target.key} avait {before} ligne(s) avant la sonde de {actor.key}, {after} après",
            "SELECT count(*) avant et après les sondes",
            {"before": before, "after": after},
        )
    return {
        "actor": str(actor.id),
        "target": str(target.id),
        "target_rows": before,
        "select_visible": visible,
        "shared_visible": visible - unshared,
        "update": update,
        "delete": delete,
        "insert": insert,
        "outcome": "violation" if violations else ("refused" if before else "vacuous"),
        "violations": violations,
    }


async def _write_probe(connection: asyncpg.Connection, sql: str, *args: Any) -> dict[str, Any]:
    try:
        async with connection.transaction():
            return {"affected": _affected(await connection.execute(sql, *args)), "error": None}
    except asyncpg.PostgresError as exc:  # e.g. an append-only table refusing any UPDATE: refused too
        return {"affected": 0, "error": _reason(exc)}


async def probe_service(
    dsn: str, service: str, tables: list[dict[str, Any]], tenants: list[ProbeTenant]
) -> dict[str, Any]:
    """All probes of one service's tables, as its application role; always rolled back."""
    connection = await asyncpg.connect(dsn)
    try:
        connected_as = await connection.fetchval("SELECT current_user")
        transaction = connection.transaction()
        await transaction.start()
        try:
            work = []
            for table in tables:
                item = {
                    "schema": table["schema"],
                    "table": table["table"],
                    "policies": table["policies"],
                    "probe_rows_inserted": 0,
                    "insert_failures": {},
                    "insert_sql": None,
                    "insert_skipped": None,
                }
                if table["kind"] == "partition":
                    item["insert_skipped"] = PARTITION_INSERT
                else:
                    names, values, why = await _row_builder(connection, table["schema"], table["table"])
                    if why:
                        item["insert_skipped"] = f"sonde d'insertion non faite : {why}"
                    else:
                        item["insert_sql"] = _insert_sql(table["schema"], table["table"], names, values)
                work.append(item)
            await _insert_probe_rows(connection, work, tenants)
            results = []
            for item in work:
                results.append(await _probe_table(connection, item, tenants))
        finally:
            await transaction.rollback()
    finally:
        await connection.close()
    return {"service": service, "connected_as": connected_as, "tables": results}


async def _probe_table(connection: asyncpg.Connection, item: dict[str, Any], tenants: list[ProbeTenant]) -> dict:
    qualified = quote(item["schema"], item["table"])
    base = {"schema": item["schema"], "table": item["table"], "probe_rows_inserted": item["probe_rows_inserted"]}
    if not await connection.fetchval("SELECT has_table_privilege($1, 'SELECT')", qualified):
        unreachable = "le rôle applicatif n'a aucun privilège sur cette table : rien à lire, modifier ni supprimer"
        return {
            **base,
            "unreachable": unreachable,
            "insert_probe": unreachable,
            "insert_failures": {},
            "rows_per_tenant": {},
            "no_context_visible": 0,
            "pairs": [],
            "violations": [],
        }
    await _set_tenant(connection, None)
    no_context = await _count(connection, f"SELECT count(*) FROM {qualified}")
    rows = {}
    for tenant in tenants:
        await _set_tenant(connection, tenant.id)
        rows[tenant.id] = await _count(connection, f"SELECT count(*) FROM {qualified} WHERE tenant_id = $1", tenant.id)
    pairs = []
    for actor in tenants:
        for target in tenants:
            if actor.id != target.id:
                pairs.append(await _probe_pair(connection, item, actor, target, rows[target.id]))
    violations = [v for p in pairs for v in p["violations"]]
    if no_context:
        violations.insert(
            0,
            finding(
                f"{no_context} ligne(s) lisible(s) sans contexte de collectivité",
                request=f"SELECT count(*) FROM {qualified} — app.tenant_id vide",
                evidence={"rows_read": no_context},
            ),
        )
    return {
        **base,
        "unreachable": None,
        "insert_probe": "ran" if item["insert_sql"] else item["insert_skipped"],
        "insert_failures": item["insert_failures"],
        "rows_per_tenant": {str(k): v for k, v in rows.items()},
        "no_context_visible": no_context,
        "pairs": pairs,
        "violations": violations,
    }
