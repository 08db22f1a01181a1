"""The tenant registry: registering the EPCI, candidates, lookups and lifecycle transitions.

Services only ``flush()``; the request's transaction commits (docs/conventions.md,
"one transaction per request").
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle_core.auth import Principal, refuse_cross_tenant, system_tenant
from socle_core.db import tenant_session
from socle_core.errors import Conflict, InvalidInput, NotFound
from socle_reference import Epci, MemberCommune, ReferenceCatalogue, UnknownCommune, UnknownEpci
from socle_reference.codes import is_valid_insee, normalise_insee, siren_problem
from socle_tenancy.db.models import Quota, Tenant, TenantKind, TenantStatus
from socle_tenancy.domain.access import REGISTRY_READERS, require_epci_admin
from socle_tenancy.domain.tenants.schemas import CandidateOut
from socle_tenancy.keycloak import KeycloakAdmin

#: Allowed lifecycle transitions; anything else is a 409 saying what is possible.
TRANSITIONS: dict[TenantStatus, frozenset[TenantStatus]] = {
    TenantStatus.invited: frozenset({TenantStatus.active, TenantStatus.offboarding}),
    TenantStatus.active: frozenset({TenantStatus.suspended, TenantStatus.offboarding}),
    TenantStatus.suspended: frozenset({TenantStatus.active, TenantStatus.offboarding}),
    TenantStatus.offboarding: frozenset({TenantStatus.deleted}),
    TenantStatus.deleted: frozenset({TenantStatus.importing}),
    TenantStatus.importing: frozenset({TenantStatus.active}),
}

_DATE_COLUMN = {
    TenantStatus.active: "activated_at",
    TenantStatus.suspended: "suspended_at",
    TenantStatus.offboarding: "offboarding_at",
    TenantStatus.deleted: "deleted_at",
}


def epci_key(siren: str) -> str:
    return f"epci-{siren}"


def commune_key(insee: str) -> str:
    return f"commune-{insee}"


def reference_epci(catalogue: ReferenceCatalogue, siren: str) -> Epci:
    """The EPCI of the official reference; a malformed SIREN is a 422, an unknown one a 404."""
    code = "".join(siren.split())
    problem = siren_problem(code)
    if problem is not None:
        raise InvalidInput(problem, errors=[{"location": "body", "field": "body.siren", "detail": problem}])
    try:
        return catalogue.epci(code)
    except UnknownEpci as exc:
        raise NotFound(str(exc), siren=code) from exc


def reference_commune(catalogue: ReferenceCatalogue, insee: str) -> MemberCommune:
    try:
        return catalogue.commune(insee)
    except UnknownCommune as exc:
        raise NotFound(str(exc), insee_code=insee) from exc


async def deployment_epci(session: AsyncSession) -> Tenant | None:
    return await session.scalar(select(Tenant).where(Tenant.kind == TenantKind.epci.value))


async def administered_tenant(session: AsyncSession, principal: Principal, ref: str) -> Tenant:
    """The tenant named by ``ref``, if ``principal`` administers the deployment's EPCI.

    Who administers is checked before ``ref`` is looked up: the refusal is the same whether
    the tenant exists or not (the route has admitted only the EPCI's administrators' roles).
    """
    epci = await deployment_epci(session)
    require_epci_admin(principal, epci.siren if epci and epci.siren else "")
    return await resolve_tenant(session, ref)


async def readable_tenant(session: AsyncSession, principal: Principal, ref: str, *, path: str) -> Tenant:
    """The registry row ``ref`` names, for platform roles or for the tenant itself.

    A tenant's caller gets one answer, the cross-tenant 404 (reported to the audit log), for
    another tenant and for a tenant that does not exist: ids, keys and INSEE codes cannot be
    probed to learn which communes are onboarded. Platform roles get the 404 that says how to
    name a tenant. The route has admitted only these two kinds of caller.
    """
    if principal.has_any_role(*REGISTRY_READERS):
        return await resolve_tenant(session, ref)
    tenant = await find_tenant(session, ref)
    if tenant is None or not principal.names_own_tenant(tenant.id):
        refuse_cross_tenant(principal, ref, where="path", path=path)
    return tenant


async def registered_epci(session: AsyncSession, siren: str) -> Tenant:
    epci = await deployment_epci(session)
    if epci is None or epci.siren != siren:
        raise NotFound(
            f"l'EPCI {siren} n'est pas enregistré sur cette plateforme : enregistrez-le d'abord (POST /v1/epcis)",
            siren=siren,
        )
    return epci


async def register_epci(session: AsyncSession, catalogue: ReferenceCatalogue, siren: str) -> tuple[Tenant, bool]:
    """The EPCI's tenant row, created on first call; the deployment belongs to one EPCI only."""
    epci = reference_epci(catalogue, siren)
    existing = await deployment_epci(session)
    if existing is not None:
        if existing.siren != epci.siren:
            raise Conflict(
                f"cette plateforme appartient déjà à l'EPCI {existing.siren} ({existing.name}) ; "
                f"un déploiement sert un seul EPCI : {epci.siren} ne peut pas y être enregistré",
                registered_siren=existing.siren,
            )
        return existing, False
    population = catalogue.source.population
    tenant = Tenant(
        id=uuid.uuid4(),
        kind=TenantKind.epci.value,
        key=epci_key(epci.siren),
        name=epci.name,
        siren=epci.siren,
        population=epci.population,
        population_year=population.millesime,
        population_reference=population.figure,
        email_domains=[],
        status=TenantStatus.invited.value,
    )
    session.add(tenant)
    await session.flush()
    return tenant, True


async def candidates(session: AsyncSession, catalogue: ReferenceCatalogue, epci: Tenant) -> list[CandidateOut]:
    """The EPCI's member communes from the reference, with their tenant when onboarded."""
    assert epci.siren is not None
    tenants = {t.insee_code: t for t in await session.scalars(select(Tenant).where(Tenant.parent_id == epci.id))}
    year = catalogue.source.population.millesime
    out = []
    for commune in catalogue.members(epci.siren):
        tenant = tenants.get(commune.insee)
        out.append(
            CandidateOut(
                insee_code=commune.insee,
                siren=commune.siren,
                name=commune.name,
                population=commune.population,
                population_year=year,
                departement=commune.departement,
                key=commune_key(commune.insee),
                tenant_id=tenant.id if tenant else None,
                status=tenant.status if tenant else None,
            )
        )
    return out


async def find_tenant(session: AsyncSession, ref: str) -> Tenant | None:
    """A tenant named by its id, its key (``commune-30321``, ``epci-243000296``) or its INSEE code."""
    try:
        return await session.get(Tenant, uuid.UUID(ref))
    except ValueError:
        insee = normalise_insee(ref)
        where = Tenant.insee_code == insee if is_valid_insee(insee) else Tenant.key == ref
        return await session.scalar(select(Tenant).where(where))


async def resolve_tenant(session: AsyncSession, ref: str) -> Tenant:
    """``find_tenant``, or a 404 that says how to name a tenant."""
    tenant = await find_tenant(session, ref)
    if tenant is None:
        raise NotFound(
            f"aucune collectivité {ref!r} : indiquez son identifiant, sa clé (commune-<INSEE>, epci-<SIREN>) "
            "ou son code INSEE"
        )
    return tenant


async def list_tenants(
    session: AsyncSession, *, limit: int, offset: int, kind: TenantKind | None, status: TenantStatus | None
) -> tuple[list[Tenant], int]:
    query = select(Tenant)
    if kind is not None:
        query = query.where(Tenant.kind == kind.value)
    if status is not None:
        query = query.where(Tenant.status == status.value)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    # EPCI first, then communes by key: a stable order for offset pagination.
    rows = await session.scalars(query.order_by(Tenant.kind.desc(), Tenant.key).limit(limit).offset(offset))
    return list(rows), int(total or 0)


def change_status(tenant: Tenant, target: TenantStatus, reason: str | None, now: dt.datetime | None = None) -> None:
    """Move a tenant along its lifecycle, recording when and why; refuse impossible moves."""
    current = TenantStatus(tenant.status)
    if target not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "aucun (état final)"
        raise Conflict(
            f"la collectivité {tenant.key} est au statut {current.value} : elle ne peut pas passer au statut "
            f"{target.value} (possibles : {allowed})",
            current_status=current.value,
        )
    now = now or dt.datetime.now(dt.UTC)
    tenant.status = target.value
    tenant.status_reason = reason
    tenant.status_changed_at = now
    tenant.updated_at = now
    if target in _DATE_COLUMN:
        setattr(tenant, _DATE_COLUMN[target], now)


async def suspend_or_reactivate(
    session: AsyncSession, keycloak: KeycloakAdmin, tenant: Tenant, target: TenantStatus, reason: str
) -> None:
    """Suspend (organization disabled, data kept) or reactivate a tenant.

    Keycloak is called after the flush and before the request commits: if it refuses, the
    request fails and the status change is rolled back; if the commit fails afterwards, the
    same request repeated converges (enabling or disabling is idempotent).
    """
    if target not in (TenantStatus.suspended, TenantStatus.active):
        raise ValueError(f"not a suspension or reactivation: {target}")
    if target is TenantStatus.active and tenant.status != TenantStatus.suspended:
        raise Conflict(
            f"la collectivité {tenant.key} est au statut {tenant.status} : seule une collectivité suspendue "
            "peut être réactivée",
            current_status=tenant.status,
        )
    change_status(tenant, target, reason)
    await session.flush()
    if tenant.keycloak_organization_id:
        await keycloak.set_organization_enabled(tenant.keycloak_organization_id, target is TenantStatus.active)


def require_onboarded(tenant: Tenant) -> None:
    """Settings of a tenant change once it is onboarded and until it leaves."""
    if tenant.status not in (TenantStatus.active, TenantStatus.suspended):
        raise Conflict(
            f"la collectivité {tenant.key} est au statut {tenant.status} : seule une collectivité active ou "
            "suspendue peut être modifiée (terminez d'abord son onboarding, ou elle a quitté la plateforme)",
            current_status=tenant.status,
        )


def _tenant_scope(maker: async_sessionmaker[AsyncSession], tenant: Tenant, reason: str) -> Any:
    """A committed unit of work in the tenant's context: quotas are tenant-owned (RLS)."""
    return tenant_session(maker, system_tenant(tenant.id, reason=f"registry: {reason}"))


async def tenant_quotas(maker: async_sessionmaker[AsyncSession], tenant: Tenant) -> Quota:
    async with _tenant_scope(maker, tenant, "read quotas") as session:
        quota = await session.get(Quota, tenant.id)
    if quota is None:
        raise NotFound(
            f"la collectivité {tenant.key} n'a pas encore de quotas : son onboarding n'en est pas à cette étape"
        )
    return quota


async def update_quotas(maker: async_sessionmaker[AsyncSession], tenant: Tenant, changes: dict[str, int]) -> Quota:
    """Change some of a tenant's limits; the others stay."""
    require_onboarded(tenant)
    if not changes:
        raise InvalidInput(
            "indiquez au moins un de max_devices, max_readings_per_day, storage_gb",
            errors=[{"location": "body", "field": "body", "detail": "aucun quota à changer"}],
        )
    async with _tenant_scope(maker, tenant, "update quotas") as session:
        quota = await session.get(Quota, tenant.id, with_for_update=True)
        if quota is None:
            raise NotFound(
                f"la collectivité {tenant.key} n'a pas encore de quotas : son onboarding n'en est pas à cette étape"
            )
        for name, value in changes.items():
            setattr(quota, name, value)
        quota.updated_at = dt.datetime.now(dt.UTC)
    return quota


async def update_tenant(
    session: AsyncSession,
    keycloak: KeycloakAdmin,
    tenant: Tenant,
    *,
    name: str | None,
    email_domains: list[str] | None,
) -> None:
    """Rename a tenant or replace its e-mail domains (in its Keycloak organization too).

    Keycloak is called after the flush and before the request commits, like suspension: a
    refusal rolls the change back, and repeating the request converges.
    """
    require_onboarded(tenant)
    if name is None and email_domains is None:
        raise InvalidInput(
            "indiquez le nom ou les email_domains à changer",
            errors=[{"location": "body", "field": "body", "detail": "rien à changer"}],
        )
    if name is not None:
        tenant.name = name
    if email_domains is not None:
        tenant.email_domains = list(dict.fromkeys(email_domains))
    tenant.updated_at = dt.datetime.now(dt.UTC)
    await session.flush()
    if email_domains is not None and tenant.keycloak_organization_id:
        await keycloak.set_organization_domains(tenant.keycloak_organization_id, list(tenant.email_domains))
