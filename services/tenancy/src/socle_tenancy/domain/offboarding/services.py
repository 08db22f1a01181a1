"""Offboarding in the registry: the lifecycle moves and the tenant's Keycloak organization.

``start`` moves the tenant to ``offboarding`` and disables its organization, so nobody logs
in while its data are exported. ``complete`` refuses while any of the tenant's rows remain
in this service's tables, then deletes the organization and marks the tenant ``deleted``.

The way back, from the export bundle (``socle-tenants import``): ``start_import`` puts the
commune's registry row back (absent or ``deleted`` → ``importing``) under this platform's
EPCI; once the command has restored its rows and audit chain, ``complete_import`` recreates
its organization and members (new accounts have no password and get an invitation) and
makes it ``active``. All are safe to repeat: the commands that drive them resume after a crash.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle_core.audit import record
from socle_core.auth import system_tenant
from socle_core.db import tenant_context, tenant_session
from socle_core.errors import Conflict, InvalidInput, NotFound
from socle_tenancy.db.models import SCHEMA, AuditHead, OnboardingStep, Tenant, TenantKind, TenantStatus
from socle_tenancy.domain.offboarding.schemas import ImportCompletionIn, ImportIn, RestoredMemberOut
from socle_tenancy.domain.offboarding.tables import RETAINED_TABLES, TENANT_TABLES_SQL, quoted
from socle_tenancy.domain.onboarding.services import FIRST_ADMIN
from socle_tenancy.domain.tenants.services import change_status, deployment_epci
from socle_tenancy.keycloak import KeycloakAdmin

#: What the export keeps of each member: who they were and their commune roles, not their credentials or sessions.
MEMBER_FIELDS = ("id", "username", "email", "firstName", "lastName", "enabled", "emailVerified", "createdTimestamp")
#: The realm roles a commune gives its members (identity's members API).
COMMUNE_ROLES = ("commune-admin", "commune-agent")


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
    exported = []
    for member in members:
        roles = [r for r in await keycloak.realm_roles(str(member["id"])) if r in COMMUNE_ROLES]
        exported.append({**{k: member[k] for k in MEMBER_FIELDS if k in member}, "roles": roles})
    return {"tenant_id": tenant.id, "organization": organization, "members": exported}


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
            f"la collectivité {tenant.key} est au statut {tenant.status} : commencez par son offboarding "
            f"(POST /v1/tenants/{tenant.id}/offboarding), puis exportez et supprimez ses données",
            current_status=tenant.status,
        )
    remaining = await remaining_rows(maker, tenant)
    left = {table: count for table, count in remaining.items() if count}
    if left:
        raise Conflict(
            f"la collectivité {tenant.key} a encore des lignes dans {', '.join(sorted(left))} : "
            "supprimez d'abord ses données (socle-tenants offboard --confirm)",
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


def import_reason(bundle_sha256: str) -> str:
    """The status reason that ties an import to its bundle, so a re-run resumes only the same one."""
    return f"import du lot {bundle_sha256}"


def _imported(tenant: Tenant, bundle_sha256: str) -> bool:
    return tenant.status == TenantStatus.active and tenant.status_reason == f"{import_reason(bundle_sha256)} terminé"


async def start_import(session: AsyncSession, data: ImportIn) -> tuple[Tenant, bool]:
    """The commune's registry row, back under this platform's EPCI in ``importing``; True when written now."""
    wanted, reason = data.tenant, import_reason(data.bundle_sha256)
    if wanted.kind != TenantKind.commune.value:
        detail = "seule une commune peut être importée : l'EPCI est la plateforme elle-même"
        raise InvalidInput(detail, errors=[{"location": "body", "field": "body.tenant.kind", "detail": detail}])
    epci = await deployment_epci(session)
    if epci is None:
        raise NotFound("cette plateforme n'a pas encore d'EPCI : enregistrez-le d'abord (POST /v1/epcis)")
    existing = await session.get(Tenant, wanted.id)
    if existing is not None and (
        _imported(existing, data.bundle_sha256)
        or (existing.status == TenantStatus.importing and existing.status_reason == reason)
    ):
        return existing, False
    if existing is not None and existing.status != TenantStatus.deleted:
        raise Conflict(
            f"la collectivité {existing.key} existe déjà sur cette plateforme (statut {existing.status}) : "
            "un import ne remplace jamais une collectivité",
            current_status=existing.status,
        )
    other = await session.scalar(
        select(Tenant).where(
            Tenant.id != wanted.id, or_(Tenant.key == wanted.key, Tenant.insee_code == wanted.insee_code)
        )
    )
    if other is not None:
        raise Conflict(
            f"la commune {wanted.insee_code} est déjà sur cette plateforme sous un autre identifiant ({other.id}, "
            f"statut {other.status}) : ce lot ne peut pas y être importé",
            tenant_id=str(other.id),
        )
    now = dt.datetime.now(dt.UTC)
    tenant = existing or Tenant(id=wanted.id, kind=wanted.kind, key=wanted.key, created_at=now)
    tenant.name, tenant.siren, tenant.insee_code = wanted.name, wanted.siren, wanted.insee_code
    tenant.population, tenant.population_year = wanted.population, wanted.population_year
    tenant.population_reference, tenant.email_domains = wanted.population_reference, list(wanted.email_domains)
    tenant.parent_id = epci.id  # this platform's EPCI, whichever the commune left
    tenant.keycloak_organization_id = None
    if existing is None:
        tenant.status, tenant.status_reason = TenantStatus.importing.value, reason
        tenant.status_changed_at = tenant.updated_at = now
        session.add(tenant)
    else:
        change_status(tenant, TenantStatus.importing, reason, now)
    await session.flush()
    return tenant, True


async def _first_admin_email(maker: async_sessionmaker[AsyncSession], tenant: Tenant) -> str | None:
    """The first admin the commune was onboarded with, from its restored onboarding step."""
    context = system_tenant(tenant.id, reason="import: the first admin of the restored onboarding")
    async with tenant_session(maker, context) as session:
        step = await session.get(OnboardingStep, (tenant.id, FIRST_ADMIN))
    email = (step.result or {}).get("email") if step is not None else None
    return str(email) if email else None


async def _restored_entries(maker: async_sessionmaker[AsyncSession], tenant: Tenant) -> int:
    """The length of the tenant's chain, read as the tenant: chain heads are under row-level security."""
    context = system_tenant(tenant.id, reason="import: is the audit chain restored")
    async with tenant_session(maker, context) as session:
        head = await session.get(AuditHead, tenant.id)
    return head.last_seq if head is not None else 0


async def complete_import(
    session: AsyncSession,
    maker: async_sessionmaker[AsyncSession],
    keycloak: KeycloakAdmin,
    tenant: Tenant,
    data: ImportCompletionIn,
    actor: str,
) -> tuple[str, list[RestoredMemberOut], list[str]]:
    """Organization and members back, the tenant active; refused before its audit chain is restored."""
    reason = import_reason(data.bundle_sha256)
    if not _imported(tenant, data.bundle_sha256) and not (
        tenant.status == TenantStatus.importing and tenant.status_reason == reason
    ):
        raise Conflict(
            f"la collectivité {tenant.key} n'est pas en cours d'import de ce lot (statut {tenant.status}) : "
            "commencez par POST /v1/tenants/imports",
            current_status=tenant.status,
        )
    if await _restored_entries(maker, tenant) < data.audit_entries:
        raise Conflict(
            f"la chaîne d'audit de {tenant.key} n'est pas encore restaurée ({data.audit_entries} entrée(s) dans le "
            "lot) : restaurez les lignes du lot d'abord (socle-tenants import)"
        )
    source = data.organization or {}
    domains = [str(d["name"]) for d in source.get("domains") or []] or list(tenant.email_domains)
    organization = await keycloak.ensure_organization(
        tenant_id=str(tenant.id),
        alias=tenant.key,
        name=str(source.get("name") or tenant.name),
        domains=domains,
        description=str(source.get("description") or f"Commune de {tenant.name} (restaurée depuis son lot d'export)"),
        siren=tenant.siren,
    )
    organization_id = str(organization["id"])
    await keycloak.set_organization_enabled(organization_id, True)
    first_admin = await _first_admin_email(maker, tenant)
    restored, skipped = [], []
    for member in data.members:
        email = str(member.get("email") or "").lower()
        if not email:
            skipped.append(f"{member.get('username') or member.get('id')} : pas d'adresse e-mail, compte non recréé")
            continue
        roles = [r for r in member.get("roles") or [] if r in COMMUNE_ROLES]
        if "roles" not in member:  # a bundle exported before roles were kept: the first admin, agents
            roles = ["commune-admin" if email == (first_admin or "").lower() else "commune-agent"]
        user, created = await keycloak.ensure_user(
            email, first_name=member.get("firstName"), last_name=member.get("lastName")
        )
        user_id = str(user["id"])
        if roles:
            await keycloak.grant_realm_roles(user_id, roles)
        await keycloak.ensure_member(organization_id, user_id)
        error = await keycloak.send_invitation(user_id, list(user.get("requiredActions", []))) if created else ""
        restored.append(
            RestoredMemberOut(
                email=email, user_id=user_id, created=created, roles=roles, invitation_error=error or None
            )
        )
    if not _imported(tenant, data.bundle_sha256):
        tenant.keycloak_organization_id = organization_id
        tenant.first_admin_email = first_admin
        change_status(tenant, TenantStatus.active, f"{reason} terminé")
        await session.flush()
        returning = system_tenant(tenant.id, reason="import: record tenant.imported in its own chain")
        async with tenant_context(session, returning):
            await record(
                session,
                returning,
                actor=actor,
                action="tenant.imported",
                target=tenant.key,
                details={
                    "bundle_sha256": data.bundle_sha256,
                    "organization_id": organization_id,
                    "members": len(restored),
                    "accounts_created": sum(m.created for m in restored),
                },
            )
    return organization_id, restored, skipped
