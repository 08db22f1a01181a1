"""Data-sharing grants: created and revoked by the grantor, seen by both parties, audited in both chains.

The request's session acts in the caller's tenant; RLS on ``data_grants`` shows it only the
grants it is a party to and lets it write only those it grants. The audit entries are the
database's: a trigger on ``data_grants`` appends every insert, update and delete to both
tenants' chains in the same transaction, in the order of the tenants' ids (each chain is
locked until commit: a fixed order keeps two crossing grants from deadlocking), with the
grant's ``created_by`` or ``revoked_by`` as the actor, whoever wrote the row.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from socle_core.errors import Conflict, Forbidden, InvalidInput, NotFound
from socle_core.tenant import TenantId
from socle_tenancy.db.models import DataGrant, Dataset, Tenant, TenantStatus
from socle_tenancy.domain.grants.schemas import GrantIn, GrantStatus, Side
from socle_tenancy.domain.tenants.services import resolve_tenant

#: A grant may be given to a tenant still being onboarded or active, not to one leaving.
GRANTEE_STATUSES = frozenset({TenantStatus.invited.value, TenantStatus.active.value})


def _invalid(field: str, detail: str) -> InvalidInput:
    return InvalidInput(detail, errors=[{"location": "body", "field": f"body.{field}", "detail": detail}])


async def create_grant(session: AsyncSession, grantor: TenantId, actor: str, data: GrantIn) -> DataGrant:
    """A grant of the caller's own data: the grantor is always the caller's tenant."""
    now = dt.datetime.now(dt.UTC)
    if data.expires_at <= now:
        raise _invalid("expires_at", f"expires_at doit être dans le futur (il est {now.isoformat()})")
    if await session.get(Tenant, grantor.uuid) is None:
        raise NotFound("la collectivité de ce compte n'est pas dans le registre : elle ne peut pas partager de données")
    try:
        grantee = await resolve_tenant(session, data.grantee)
    except NotFound as exc:
        raise NotFound(f"aucune collectivité {data.grantee!r} avec qui partager", errors=exc.errors) from exc
    if grantee.id == grantor.uuid:
        raise _invalid("grantee", "une collectivité lit déjà ses propres données : indiquez-en une autre")
    if grantee.status not in GRANTEE_STATUSES:
        raise Conflict(
            f"la collectivité {grantee.key} est au statut {grantee.status} : aucune donnée ne peut lui être partagée"
        )
    grant = DataGrant(
        id=uuid.uuid4(),
        grantor_tenant_id=grantor.uuid,
        grantee_tenant_id=grantee.id,
        dataset=Dataset(data.dataset).value,
        resource_id=data.resource_id,
        reason=data.reason,
        created_by=actor,
        created_at=now,
        expires_at=data.expires_at,
    )
    session.add(grant)
    await session.flush()
    return grant


def _status_filter(status: GrantStatus) -> Any:
    now = func.now()
    if status is GrantStatus.revoked:
        return DataGrant.revoked_at.is_not(None)
    if status is GrantStatus.expired:
        return and_(DataGrant.revoked_at.is_(None), DataGrant.expires_at <= now)
    return and_(DataGrant.revoked_at.is_(None), DataGrant.expires_at > now)


async def list_grants(
    session: AsyncSession,
    tenant: TenantId,
    *,
    side: Side | None,
    status: GrantStatus | None,
    dataset: Dataset | None,
    limit: int,
    offset: int,
) -> tuple[list[DataGrant], int]:
    """Grants the tenant gave or received (RLS shows no other), newest first."""
    if side is Side.grantor:
        query = select(DataGrant).where(DataGrant.grantor_tenant_id == tenant.uuid)
    elif side is Side.grantee:
        query = select(DataGrant).where(DataGrant.grantee_tenant_id == tenant.uuid)
    else:
        query = select(DataGrant).where(
            or_(DataGrant.grantor_tenant_id == tenant.uuid, DataGrant.grantee_tenant_id == tenant.uuid)
        )
    if status is not None:
        query = query.where(_status_filter(status))
    if dataset is not None:
        query = query.where(DataGrant.dataset == dataset.value)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(query.order_by(DataGrant.created_at.desc(), DataGrant.id).limit(limit).offset(offset))
    return list(rows), int(total or 0)


async def get_grant(session: AsyncSession, tenant: TenantId, grant_id: uuid.UUID) -> DataGrant:
    """A grant the tenant is a party to; any other does not exist for it."""
    grant = await session.scalar(
        select(DataGrant).where(
            DataGrant.id == grant_id,
            or_(DataGrant.grantor_tenant_id == tenant.uuid, DataGrant.grantee_tenant_id == tenant.uuid),
        )
    )
    if grant is None:
        raise NotFound(f"aucune autorisation de partage {grant_id}")
    return grant


async def revoke_grant(
    session: AsyncSession, tenant: TenantId, actor: str, grant_id: uuid.UUID, reason: str | None
) -> DataGrant:
    """Revoke a grant the tenant gave; revoking it again changes nothing and records nothing."""
    grant = await get_grant(session, tenant, grant_id)
    if grant.grantor_tenant_id != tenant.uuid:
        raise Forbidden("seule la collectivité qui a accordé cet accès peut le révoquer")
    if grant.revoked_at is not None:
        return grant
    grant.revoked_at = dt.datetime.now(dt.UTC)
    grant.revoked_by = actor
    grant.revocation_reason = reason
    await session.flush()
    return grant
