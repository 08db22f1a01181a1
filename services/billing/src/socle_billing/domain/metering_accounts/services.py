"""Metering accounts: opened once per tenant by onboarding, read by the tenant and platform roles.

Opening is idempotent: the same tenant and key answer the account already there, so the
onboarding workflow may repeat its step after a crash. A different key for the same tenant,
or a key another tenant holds, is a conflict, never an overwrite. A new account is opened
only for a tenant of the registry, under its registry key (``socle_core.directory``: billing
reads no tenancy table). The opening is recorded in
the tenant's audit chain in the same transaction as the account.
"""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle_billing.db.models import AccountDirectory, AccountStatus, MeteringAccount
from socle_billing.domain.metering_accounts.schemas import MeteringAccountIn
from socle_core.audit import record as audit
from socle_core.auth import system_tenant
from socle_core.db import tenant_session
from socle_core.directory import registered
from socle_core.errors import Conflict, ConstraintMessage, InvalidInput, NotFound
from socle_core.tenant import TenantId

OPENED = "billing.metering_account_opened"

#: Billing's words for the constraints an opening may break (mapped by ``socle_core.errors``).
CONSTRAINTS = {
    "uq_metering_accounts_tenant_key": ConstraintMessage(
        "cette clé a déjà un compte de consommation, ouvert pour un autre tenant", field="tenant_key"
    ),
}


async def open_account(
    session: AsyncSession, tenant: TenantId, data: MeteringAccountIn, actor: str
) -> tuple[MeteringAccount, bool]:
    """The tenant's account, opened now or before; True when this call opened it.

    ``session`` must be bound to ``tenant`` (RLS): the row is written in its context.
    """
    existing = await session.get(MeteringAccount, tenant.uuid)
    if existing is None:
        await _require_registered(session, tenant, data)
        existing = MeteringAccount(
            tenant_id=tenant.uuid,
            tenant_key=data.tenant_key,
            kind=data.kind,
            status=AccountStatus.open.value,
            opened_by=actor,
        )
        session.add(existing)
        await session.flush()  # a key another tenant holds breaks a constraint: CONSTRAINTS says it
        await session.refresh(existing)  # its directory entry is written by a trigger (migration 0004)
        await audit(
            session,
            tenant,
            actor=actor,
            action=OPENED,
            target=f"metering_account:{tenant.uuid}",
            details={"tenant_key": existing.tenant_key, "kind": existing.kind},
        )
        return existing, True
    if (existing.tenant_key, existing.kind) != (data.tenant_key, data.kind):
        raise Conflict(
            f"la collectivité {tenant.uuid} a déjà un compte de consommation pour {existing.tenant_key} "
            f"({existing.kind}), pas pour {data.tenant_key} ({data.kind})",
            current_tenant_key=existing.tenant_key,
        )
    if existing.status != AccountStatus.open:
        raise Conflict(f"le compte de consommation de {existing.tenant_key} est clos : un compte clos ne rouvre jamais")
    return existing, False


async def _require_registered(session: AsyncSession, tenant: TenantId, data: MeteringAccountIn) -> None:
    """The tenant must be in the registry (not deleted), under the key the request gives."""
    entry = next((t for t in await registered(session, tenant_id=tenant.uuid) if t.id == tenant.uuid), None)
    if entry is None or entry.status == "deleted":
        raise NotFound(
            f"aucune collectivité {tenant.uuid} dans le registre : un compte de consommation ne s'ouvre "
            "que pour une collectivité inscrite (par son onboarding)",
            tenant_id=str(tenant.uuid),
        )
    if entry.key != data.tenant_key:
        detail = f"la collectivité {tenant.uuid} a la clé {entry.key} dans le registre, pas {data.tenant_key}"
        raise InvalidInput(detail, errors=[{"location": "body", "field": "body.tenant_key", "detail": detail}])


async def get_account(session: AsyncSession, tenant: TenantId) -> MeteringAccount:
    """The tenant's account; absent and another tenant's are the same 404."""
    account = await session.scalar(select(MeteringAccount).where(MeteringAccount.tenant_id == tenant.uuid))
    if account is None:
        raise NotFound(f"aucun compte de consommation pour la collectivité {tenant.uuid}")
    return account


async def list_accounts(
    maker: async_sessionmaker[AsyncSession], *, limit: int, offset: int
) -> tuple[list[MeteringAccount], int]:
    """Accounts in opening order, each read in its own tenant's context (platform roles only)."""
    async with maker() as session, session.begin():
        total = await session.scalar(select(func.count()).select_from(AccountDirectory))
        ids: list[uuid.UUID] = list(
            await session.scalars(
                select(AccountDirectory.account_of)
                .order_by(AccountDirectory.opened_at, AccountDirectory.account_of)
                .limit(limit)
                .offset(offset)
            )
        )
    accounts = []
    for tenant_id in ids:
        async with tenant_session(maker, system_tenant(tenant_id, reason="billing: list metering accounts")) as s:
            account = await s.get(MeteringAccount, tenant_id)
        if account is not None:  # an offboarded tenant's rows are gone; its id stays listed
            accounts.append(account)
    return accounts, int(total or 0)
