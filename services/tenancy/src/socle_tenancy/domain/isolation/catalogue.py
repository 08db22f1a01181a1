"""Catalogue checks: what PostgreSQL itself says about every tenant-owned table and every app role.

Everything here reads ``pg_catalog`` only, which any role may read: the report needs no
privileged account. A table is tenant-owned when it has a ``tenant_id`` column; partitions
are listed on their own, because a partition queried directly applies its *own* RLS flags
and policies, not its parent's.
"""

from __future__ import annotations

import re
from typing import Any

import asyncpg

#: Which tables of which schemas are looked at: the service schemas (plus any extra named).
TABLES_SQL = """
SELECT c.oid, n.nspname AS schema, c.relname AS table, c.relkind::text AS relkind, c.relispartition AS is_partition,
       (SELECT pn.nspname || '.' || p.relname FROM pg_inherits i
          JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = p.relnamespace
         WHERE i.inhrelid = c.oid LIMIT 1) AS parent,
       c.relrowsecurity AS rls_enabled, c.relforcerowsecurity AS rls_forced,
       pg_get_userbyid(c.relowner) AS owner
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY($1::text[])
  AND EXISTS (SELECT 1 FROM pg_attribute a
               WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND a.attnum > 0 AND NOT a.attisdropped)
ORDER BY n.nspname, c.relname
"""

POLICIES_SQL = """
SELECT pol.polrelid AS oid, pol.polname AS name,
       CASE pol.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                       WHEN 'd' THEN 'DELETE' ELSE 'ALL' END AS command,
       pol.polpermissive AS permissive,
       CASE WHEN pol.polroles = '{0}' THEN ARRAY['public']
            ELSE ARRAY(SELECT rolname::text FROM pg_roles WHERE oid = ANY(pol.polroles) ORDER BY 1) END AS roles,
       pg_get_expr(pol.polqual, pol.polrelid) AS using,
       pg_get_expr(pol.polwithcheck, pol.polrelid) AS with_check
FROM pg_policy pol WHERE pol.polrelid = ANY($1::oid[])
ORDER BY pol.polrelid, pol.polname
"""

APP_ROLES_SQL = r"""
SELECT r.oid, r.rolname AS name, r.rolsuper AS superuser, r.rolbypassrls AS bypassrls, r.rolcanlogin AS login
FROM pg_roles r WHERE r.rolname LIKE 'socle\_%\_app' ORDER BY r.rolname
"""

#: Objects a role owns, in any database of the cluster (pg_shdepend is cluster-wide).
OWNED_SQL = """
SELECT COALESCE(db.datname, '(cluster)') AS database, d.classid::regclass::text AS catalog, count(*) AS objects
FROM pg_shdepend d LEFT JOIN pg_database db ON db.oid = d.dbid
WHERE d.refclassid = 'pg_authid'::regclass AND d.refobjid = $1 AND d.deptype = 'o'
GROUP BY 1, 2 ORDER BY 1, 2
"""

#: Roles a role is a member of, transitively: their powers are its powers.
MEMBER_OF_SQL = """
WITH RECURSIVE m(roleid) AS (
  SELECT roleid FROM pg_auth_members WHERE member = $1
  UNION SELECT a.roleid FROM pg_auth_members a JOIN m ON a.member = m.roleid)
SELECT r.rolname AS name, r.rolsuper AS superuser, r.rolbypassrls AS bypassrls,
       EXISTS (SELECT 1 FROM pg_shdepend d WHERE d.refclassid = 'pg_authid'::regclass
                AND d.refobjid = r.oid AND d.deptype = 'o') AS owns_objects
FROM m JOIN pg_roles r ON r.oid = m.roleid ORDER BY 1
"""

#: Roles whose policies bind the application roles: PUBLIC, the app roles, and every role they belong to.
APP_REACHABLE_SQL = r"""
WITH RECURSIVE m(roleid) AS (
  SELECT oid FROM pg_roles WHERE rolname LIKE 'socle\_%\_app'
  UNION SELECT a.roleid FROM pg_auth_members a JOIN m ON a.member = m.roleid)
SELECT r.rolname AS name FROM m JOIN pg_roles r ON r.oid = m.roleid
"""

PRIVILEGED_SQL = """
SELECT rolname AS name, rolsuper AS superuser, rolbypassrls AS bypassrls, rolcanlogin AS login
FROM pg_roles WHERE (rolsuper OR rolbypassrls) AND rolname NOT LIKE 'pg\\_%' ORDER BY 1
"""

_SETTING = re.compile(r"current_setting\(\s*'app\.tenant_id'")
_SHARED = re.compile(r"\btenancy\.shared_with_current_tenant\s*\(")
_COLUMN = re.compile(r'^"?([a-z_][a-z0-9_]*)"?$')


def _strip(expr: str) -> str:
    """Drop parentheses that wrap the whole expression."""
    expr = expr.strip()
    while expr.startswith("(") and _closing(expr, 0) == len(expr) - 1:
        expr = expr[1:-1].strip()
    return expr


def _closing(expr: str, start: int) -> int:
    depth, quoted = 0, False
    for i in range(start, len(expr)):
        ch = expr[i]
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
            if depth == 0:
                return i
    return -1


def _split(expr: str, operator: str) -> list[str]:
    """Split on a boolean operator at the top level (outside parentheses and quotes)."""
    parts, depth, quoted, start = [], 0, False, 0
    token = f" {operator} "
    i = 0
    while i < len(expr):
        ch = expr[i]
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        elif not quoted and depth == 0 and expr[i : i + len(token)].upper() == token:
            parts.append(expr[start:i])
            start = i + len(token)
            i = start
            continue
        i += 1
    parts.append(expr[start:])
    return [_strip(p) for p in parts if p.strip()]


def _conjunct_anchor(term: str) -> str | None:
    """``tenant_id`` or ``column:<name>`` for ``<column> = <tenant setting>``, ``shared`` for a grant."""
    if _SHARED.search(term):
        return "shared"
    sides = _split(term, "=") if " = " in term else []
    if len(sides) == 2:
        for column, other in (sides, sides[::-1]):
            match = _COLUMN.match(_strip(column))
            if match and _SETTING.search(other) and not _SETTING.search(column):
                return "tenant_id" if match.group(1) == "tenant_id" else f"column:{match.group(1)}"
    return None


def anchors(expr: str | None) -> list[str | None]:
    """The anchor of each top-level OR branch of a policy expression (None: not anchored)."""
    if expr is None:
        return []
    result: list[str | None] = []
    for disjunct in _split(_strip(expr), "OR"):
        found = [a for a in (_conjunct_anchor(c) for c in _split(disjunct, "AND")) if a]
        best = "tenant_id" if "tenant_id" in found else (found[0] if found else None)
        result.append(best)
    return result


def classify_policy(policy: dict[str, Any], app_reachable: set[str] | None = None) -> tuple[str, list[str]]:
    """The policy's kind and what is wrong with it (empty: legitimate).

    Writes (ALL, INSERT, UPDATE, DELETE) must be anchored on ``tenant_id`` in every branch;
    a permissive FOR SELECT policy may also let a tenant read rows naming it in another
    column (a grantee) or rows shared by a grant (``tenancy.shared_with_current_tenant``).
    """
    command, using, check = policy["command"], policy["using"], policy["with_check"]
    using_anchors, check_anchors = anchors(using), anchors(check)
    problems: list[str] = []
    name = policy["name"]
    if not policy["permissive"]:
        return "restrictive", problems  # it can only narrow what the permissive policies allow
    if app_reachable is not None and not ({"public", *app_reachable} & set(policy["roles"])):
        return "other_roles", problems  # e.g. the owner's, used by SECURITY DEFINER functions only
    if command in ("ALL", "UPDATE", "DELETE") and (not using_anchors or set(using_anchors) != {"tenant_id"}):
        problems.append(f"politique {name} ({command}) : USING n'est pas ancré sur tenant_id = app.tenant_id : {using}")
    if command in ("ALL", "INSERT", "UPDATE"):
        effective = check_anchors if check is not None else (using_anchors if command != "INSERT" else [])
        if not effective or set(effective) != {"tenant_id"}:
            problems.append(
                f"politique {name} ({command}) : WITH CHECK n'impose pas tenant_id = app.tenant_id : {check or using}"
            )
    if command == "SELECT" and (not using_anchors or None in using_anchors):
        problems.append(f"politique {name} (SELECT) : une branche de USING n'est ancrée sur rien : {using}")
    if problems:
        return "unanchored", problems
    if set(using_anchors) == {"tenant_id"}:
        return "tenant_isolation", problems
    if "shared" in using_anchors:
        return "shared_read", problems
    return "grantee_read", problems


def sharing_branches(policies: list[dict[str, Any]]) -> list[str]:
    """The USING branches through which another tenant's rows are legitimately readable."""
    branches: list[str] = []
    for policy in policies:
        if (
            not policy["permissive"]
            or policy.get("kind") == "other_roles"
            or policy["command"] not in ("SELECT", "ALL")
            or policy.get("problems")
        ):
            continue
        for branch in _split(_strip(policy["using"] or ""), "OR"):
            found = [a for a in (_conjunct_anchor(c) for c in _split(branch, "AND")) if a]
            if found and "tenant_id" not in found:
                branches.append(branch)
    return branches


async def read_tables(connection: asyncpg.Connection, schemas: list[str]) -> list[dict[str, Any]]:
    """Every tenant-owned table and partition of these schemas, with RLS flags, policies and findings."""
    rows = [dict(r) for r in await connection.fetch(TABLES_SQL, schemas)]
    policies = [dict(p) for p in await connection.fetch(POLICIES_SQL, [r["oid"] for r in rows])]
    app_roles = {r["name"] for r in await connection.fetch(APP_ROLES_SQL)}
    reachable = {r["name"] for r in await connection.fetch(APP_REACHABLE_SQL)}
    tables = []
    for row in rows:
        own = []
        for policy in (p for p in policies if p["oid"] == row["oid"]):
            kind, problems = classify_policy(policy, reachable)
            own.append(
                {
                    "name": policy["name"],
                    "command": policy["command"],
                    "permissive": policy["permissive"],
                    "roles": list(policy["roles"]),
                    "using": policy["using"],
                    "with_check": policy["with_check"],
                    "using_anchors": anchors(policy["using"]),
                    "with_check_anchors": anchors(policy["with_check"]),
                    "kind": kind,
                    "problems": problems,
                }
            )
        violations = [problem for policy in own for problem in policy["problems"]]
        if not row["rls_enabled"]:
            violations.insert(0, "la sécurité au niveau des lignes (RLS) est DÉSACTIVÉE")
        if not row["rls_forced"]:
            violations.insert(
                0, "la sécurité au niveau des lignes n'est pas FORCÉE (le propriétaire de la table y échappe)"
            )
        if not any(p["permissive"] and p["kind"] != "other_roles" for p in own):
            violations.append("aucune politique permissive sur app.tenant_id")
        if row["owner"] in app_roles:
            violations.append(f"appartient au rôle applicatif {row['owner']} (un propriétaire peut désactiver la RLS)")
        tables.append(
            {
                "schema": row["schema"],
                "table": row["table"],
                "kind": "partition" if row["is_partition"] else ("partitioned" if row["relkind"] == "p" else "table"),
                "parent": row["parent"],
                "owner": row["owner"],
                "rls_enabled": row["rls_enabled"],
                "rls_forced": row["rls_forced"],
                "policies": own,
                "violations": violations,
            }
        )
    return tables


async def read_roles(connection: asyncpg.Connection) -> dict[str, Any]:
    """Every ``socle_*_app`` role: not superuser, not BYPASSRLS, owns nothing, inherits none of that."""
    application_roles = []
    for role in await connection.fetch(APP_ROLES_SQL):
        owned = [dict(r) for r in await connection.fetch(OWNED_SQL, role["oid"])]
        member_of = [dict(r) for r in await connection.fetch(MEMBER_OF_SQL, role["oid"])]
        violations = []
        if role["superuser"]:
            violations.append("est superutilisateur")
        if role["bypassrls"]:
            violations.append("a l'attribut BYPASSRLS")
        for item in owned:
            violations.append(f"possède {item['objects']} objet(s) de {item['catalog']} dans {item['database']}")
        for parent in member_of:
            powers = [
                w for w, on in (("est superutilisateur", "superuser"), ("a BYPASSRLS", "bypassrls")) if parent[on]
            ]
            if parent["owns_objects"]:
                powers.append("possède des objets")
            if powers:
                violations.append(f"est membre de {parent['name']}, qui {' et '.join(powers)}")
        application_roles.append(
            {
                "name": role["name"],
                "login": role["login"],
                "superuser": role["superuser"],
                "bypassrls": role["bypassrls"],
                "owns": owned,
                "member_of": [m["name"] for m in member_of],
                "violations": violations,
            }
        )
    privileged = [dict(r) for r in await connection.fetch(PRIVILEGED_SQL)]
    return {"application_roles": application_roles, "privileged_roles": privileged}
