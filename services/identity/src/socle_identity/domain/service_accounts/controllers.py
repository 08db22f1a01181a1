"""``/v1/service-accounts``: a commune admin's client-credentials clients, scoped to the commune."""

from __future__ import annotations

from uuid import UUID

from litestar import Controller, delete, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from socle_core import access
from socle_core.roles import Role
from socle_identity.deps import TenantAdmin, provide_tenant_admin
from socle_identity.domain.service_accounts.schemas import (
    IssuedServiceAccount,
    ServiceAccount,
    ServiceAccountCreate,
)
from socle_identity.domain.service_accounts.services import ServiceAccountService
from socle_identity.keycloak import KeycloakAdminClient, ServiceAccountClients


def provide_service(
    db_session: NamedDependency[AsyncSession],
    tenant_admin: NamedDependency[TenantAdmin],
    keycloak: NamedDependency[KeycloakAdminClient],
) -> ServiceAccountService:
    return ServiceAccountService(db_session, tenant_admin, ServiceAccountClients(keycloak))


#: One of the caller's commune's accounts; another commune's does not exist (404).
ACCOUNT = access.tenant_resource(Role.COMMUNE_ADMIN, target="service-account", why="")
#: A change the owner sees through the account's own page.
ACCOUNT_CHANGE = access.tenant_resource(
    Role.COMMUNE_ADMIN, target="service-account", why="", view="/v1/service-accounts/{account_id:uuid}"
)


class ServiceAccountController(Controller):
    path = "/v1/service-accounts"
    tags = ["service accounts"]
    dependencies = {
        "tenant_admin": Provide(provide_tenant_admin, sync_to_thread=False),
        "service": Provide(provide_service, sync_to_thread=False),
    }

    @post(
        "/",
        summary="Create a service account; its secret is shown only in this answer",
        access=access.tenant_own(Role.COMMUNE_ADMIN, why="created in the caller's commune"),
    )
    async def create(
        self, data: JSONBody[ServiceAccountCreate], service: NamedDependency[ServiceAccountService]
    ) -> IssuedServiceAccount:
        account, issued = await service.create(data.name, data.access)
        return _issued(account, issued.secret, service)

    @get(
        "/",
        summary="The commune's service accounts (without secrets)",
        access=access.tenant_own(Role.COMMUNE_ADMIN, why="the caller's commune's accounts"),
    )
    async def list_accounts(self, service: NamedDependency[ServiceAccountService]) -> list[ServiceAccount]:
        return [ServiceAccount.model_validate(a) for a in await service.list()]

    @get(
        "/{account_id:uuid}",
        summary="One service account (without its secret)",
        access=ACCOUNT.because("read"),
    )
    async def get_account(
        self, account_id: FromPath[UUID], service: NamedDependency[ServiceAccountService]
    ) -> ServiceAccount:
        return ServiceAccount.model_validate(await service.get(account_id))

    @post(
        "/{account_id:uuid}/rotate",
        status_code=200,
        summary="Issue a new secret; the old one stops working",
        access=ACCOUNT_CHANGE.because("rotate another commune's secret"),
    )
    async def rotate(
        self, account_id: FromPath[UUID], service: NamedDependency[ServiceAccountService]
    ) -> IssuedServiceAccount:
        account, issued = await service.rotate(account_id)
        return _issued(account, issued.secret, service)

    @delete(
        "/{account_id:uuid}",
        summary="Revoke: no new token can be obtained with this account",
        access=ACCOUNT_CHANGE.because("revoke another commune's account"),
    )
    async def revoke(self, account_id: FromPath[UUID], service: NamedDependency[ServiceAccountService]) -> None:
        await service.revoke(account_id)


def _issued(account: object, secret: str, service: ServiceAccountService) -> IssuedServiceAccount:
    base = ServiceAccount.model_validate(account).model_dump()
    return IssuedServiceAccount(**base, client_secret=secret, token_endpoint=service.clients.client.token_endpoint)
