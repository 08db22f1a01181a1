"""Service accounts of one tenant: a row in identity.service_accounts and a Keycloak client.

The row is flushed first (so database refusals come before any Keycloak change), then the
Keycloak client is created with the row's id as its internal id; the request transaction
commits afterwards. Rows are filtered by tenant here and by row-level security underneath.
Creation, rotation and revocation are recorded in the tenant's audit chain in that same
transaction (actor: the admin's subject), so the entry and the identity change commit together.
"""

from __future__ import annotations

import datetime as dt
import uuid

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from socle_core.audit import record
from socle_core.errors import Conflict, NotFound
from socle_core.keycloak_admin import keycloak_problems
from socle_identity.db.models import ServiceAccount
from socle_identity.deps import TenantAdmin
from socle_identity.keycloak import IssuedSecret, ServiceAccountClients
from socle_identity.keycloak.service_accounts import Access

log = structlog.get_logger("socle.identity.service_accounts")


class ServiceAccountService:
    def __init__(self, session: AsyncSession, admin: TenantAdmin, clients: ServiceAccountClients) -> None:
        self.session = session
        self.admin = admin
        self.clients = clients

    async def list(self) -> list[ServiceAccount]:
        rows = await self.session.scalars(
            select(ServiceAccount)
            .where(ServiceAccount.tenant_id == self.admin.tenant.uuid)
            .order_by(ServiceAccount.created_at, ServiceAccount.client_id)
        )
        return list(rows)

    async def get(self, account_id: uuid.UUID) -> ServiceAccount:
        account = await self.session.scalar(
            select(ServiceAccount).where(
                ServiceAccount.id == account_id, ServiceAccount.tenant_id == self.admin.tenant.uuid
            )
        )
        if account is None:
            raise NotFound("aucun compte de service avec cet identifiant", service_account_id=str(account_id))
        return account

    async def create(self, name: str, access: Access) -> tuple[ServiceAccount, IssuedSecret]:
        account_id = uuid.uuid4()
        account = ServiceAccount(
            id=account_id,
            tenant_id=self.admin.tenant.uuid,
            client_id=f"sa-{self.admin.organization}-{account_id.hex[:12]}",
            name=name,
            access=access,
        )
        self.session.add(account)
        await self.session.flush()
        with keycloak_problems():
            issued = await self.clients.create(
                account_id,
                account.client_id,
                alias=self.admin.organization,
                tenant_id=self.admin.tenant.uuid,
                access=access,
                description=name,
            )
        await self.session.refresh(account)
        await self._audit("service_account.created", account)
        log.info(
            "service_account_created",
            service_account_id=str(account_id),
            client_id=account.client_id,
            access=access,
            by=self.admin.subject,
        )
        return account, issued

    async def rotate(self, account_id: uuid.UUID) -> tuple[ServiceAccount, IssuedSecret]:
        account = await self.get(account_id)
        if account.revoked_at is not None:
            raise Conflict("ce compte de service est révoqué : créez-en un nouveau", service_account_id=str(account_id))
        with keycloak_problems():
            issued = await self.clients.rotate_secret(account_id)
        await self._audit("service_account.rotated", account)
        log.info("service_account_rotated", service_account_id=str(account_id), by=self.admin.subject)
        return account, issued

    async def revoke(self, account_id: uuid.UUID) -> None:
        account = await self.get(account_id)
        if account.revoked_at is not None:
            return
        with keycloak_problems():
            await self.clients.delete(account_id)
        account.revoked_at = dt.datetime.now(dt.UTC)
        await self.session.flush()
        await self._audit("service_account.revoked", account)
        log.info("service_account_revoked", service_account_id=str(account_id), by=self.admin.subject)

    async def _audit(self, action: str, account: ServiceAccount) -> None:
        """The change in the tenant's chain, in the request's transaction (commits or rolls back with it)."""
        await record(
            self.session,
            self.admin.tenant,
            actor=self.admin.subject,
            action=action,
            target=f"service_account:{account.id}",
            details={"client_id": account.client_id, "name": account.name, "access": account.access},
        )
