"""Which tables hold a tenant's rows: found in pg_catalog, so a new table is never missed.

A table is tenant-owned when it has a ``tenant_id`` column. Partitions are reached through
their parent. Audit tables are exported but never deleted: the audit log is kept for its
legal retention period after the tenant leaves.
"""

from __future__ import annotations

RETAINED_TABLES = frozenset({"audit_entries", "audit_heads"})
#: The hash chain an import restores verbatim (``bundle.restore_audit_chain``), never row by row.
AUDIT_TABLE = "audit_entries"
#: Rows an import restores revoked (column set to the import's time): a service account's
#: secret is never exported and its Keycloak client is gone, so a device needs a new one.
RESTORED_REVOKED = {("identity", "service_accounts"): "revoked_at"}

#: The columns an INSERT may name: not generated, not dropped.
INSERTABLE_COLUMNS_SQL = """
SELECT a.attname::text AS name FROM pg_attribute a
WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
ORDER BY a.attnum
"""

#: One row per tenant-owned table of a schema: name, primary key in order, readable by the caller.
TENANT_TABLES_SQL = """
SELECT c.relname AS table,
       ARRAY(
           SELECT a2.attname::text
           FROM pg_index i
           JOIN pg_attribute a2 ON a2.attrelid = i.indrelid AND a2.attnum = ANY (i.indkey::int2[])
           WHERE i.indrelid = c.oid AND i.indisprimary
           ORDER BY array_position(i.indkey::int2[], a2.attnum)
       ) AS primary_key,
       has_table_privilege(c.oid, 'SELECT') AS readable
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
WHERE n.nspname = CAST(:schema AS text) AND c.relkind IN ('r', 'p') AND NOT c.relispartition
ORDER BY c.relname
"""

#: Foreign keys between tables of one schema: (child, parent), to delete children first.
FOREIGN_KEYS_SQL = """
SELECT child.relname AS child, parent.relname AS parent
FROM pg_constraint k
JOIN pg_class child ON child.oid = k.conrelid
JOIN pg_class parent ON parent.oid = k.confrelid
JOIN pg_namespace n ON n.oid = child.relnamespace AND n.oid = parent.relnamespace
WHERE k.contype = 'f' AND n.nspname = CAST(:schema AS text) AND child.oid <> parent.oid
"""


def quoted(schema: str, table: str) -> str:
    """``"schema"."table"`` for names read from the catalogue."""
    return '"' + schema.replace('"', '""') + '"."' + table.replace('"', '""') + '"'


def deletion_order(tables: list[str], foreign_keys: list[tuple[str, str]]) -> list[str]:
    """Tables ordered so that a table comes before every table it references."""
    remaining = set(tables)
    parents_of = {t: {p for c, p in foreign_keys if c == t and p in remaining} for t in tables}
    order: list[str] = []
    while remaining:
        # A table no remaining table references can go now.
        ready = sorted(t for t in remaining if not any(t in parents_of[o] for o in remaining if o != t))
        if not ready:  # a reference cycle: delete in name order, the transaction sorts it out or fails loudly
            ready = sorted(remaining)
        for table in ready:
            order.append(table)
            remaining.discard(table)
    return order
