"""Offboarding in the registry: the lifecycle moves and the tenant's Keycloak organization.

``start`` moves the tenant to ``offboarding`` and disables its organization, so nobody logs
in while its data are exported. ``complete`` refuses while any of the tenant's rows remain
in this service's tables, then deletes the organization and marks the tenant ``deleted``.
Both are safe to repeat: the command that drives them resumes after a crash.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle_core.auth import system_tenant
from socle_core.db import tenant_session
from socle_core.errors import Conflict
from socle_tenancy.db.models import SCHEMA, Tenant, TenantStatus
from socle_tenancy.domain.offboarding.tables import RETAINED_TABLES, TENANT_TABLES_SQL, quoted
from socle_tenancy.domain.onboarding.keycloak import KeycloakAdmin
from socle_tenancy.domain.tenants.services import change_status

#: What the export keeps of each member: who they were, not their credentials or sessions.
MEMBER_FIELDS = ("id", "username", "email", "firstName", "lastName", "enabled", "emailVerified", "createdTimestamp")


async def start(session: AsyncSession, keycloak: KeycloakAdmin, tenant: Tenant, reason: str) -> None:
    if tenant.status == TenantStatus.offboarding:
        return
    change_status(tenant, TenantStatus.offboarding, reason)
    await session.flush()
    if tenant.keycloak_organization_id:
        await keycloak.set_organization_enabled(tenant.keycloak_organization_id, False)


async def identity_export(keycloak: KeycloakAdmin, tenant: Tenant) -> dict[str, Any]:
    """The organization found by its ``tenant_id`` attribute (not by the stored id: proof of absence)."""
    organization = await keycloak.find_organization(str(tenant.id))
    if organization is None:
        return {"tenant_id": tenant.id, "organization": None, "members": []}
    members = await keycloak.organization_members(str(organization["id"]))
    return {
        "tenant_id": tenant.id,
        "organization": organization,
        "members": [{k: m[k] for k in MEMBER_FIELDS if k in m} for m in members],
    }


async def remaining_rows(maker: async_sessionmaker[AsyncSession], tenant: Tenant) -> dict[str, int]:
    """Rows of the tenant in each tenant-owned table of this service (retained tables left out)."""
    counts: dict[str, int] = {}
    context = system_tenant(tenant.id, reason="offboarding: check nothing remains")
    async with tenant_session(maker, context) as session:
        tables = (await session.execute(text(TENANT_TABLES_SQL), {"schema": SCHEMA})).all()
        for row in tables:
            if row.table in RETAINED_TABLES:
                continue
            count = await session.scalar(
                text(f"SELECT count(*) FROM {quoted(SCHEMA, row.table)} WHERE tenant_id = :tenant"),  # noqa: S608 (catalogue names, quoted)
                {"tenant": tenant.id},
            )
            counts[f"{SCHEMA}.{row.table}"] = int(count or 0)
    return counts


async def complete(
    session: AsyncSession,
    maker: async_sessionmaker[AsyncSession],
    keycloak: KeycloakAdmin,
    tenant: Tenant,
    reason: str,
    bundle_sha256: str,
) -> tuple[bool, dict[str, int]]:
    """Delete the organization and mark the tenant deleted, once its rows here are gone."""
    if tenant.status == TenantStatus.deleted:
        return False, await remaining_rows(maker, tenant)
    if tenant.status != TenantStatus.offboarding:
        raise Conflict(
            f"tenant {tenant.key} is {tenant.status}: start its offboarding first "
            f"(POST /v1/tenants/{tenant.id}/offboarding), then export and delete its data",
            current_status=tenant.status,
        )
    remaining = await remaining_rows(maker, tenant)
    left = {table: count for table, count in remaining.items() if count}
    if left:
        raise Conflict(
            f"tenant {tenant.key} still has rows in {', '.join(sorted(left))}: "
            "delete its data first (socle-tenants offboard --confirm)",
            remaining_rows=left,
        )
    organization = await keycloak.find_organization(str(tenant.id))
    change_status(tenant, TenantStatus.deleted, f"{reason} (export bundle sha256 {bundle_sha256})")
    tenant.first_admin_email = None  # personal data; the registry row itself stays as the record
    await session.flush()
    deleted = False
    if organization is not None:
        deleted = await keycloak.delete_organization(str(organization["id"]))
    return deleted, remaining
