"""``/v1/metering-accounts``: the account each tenant's usage is metered on.

Onboarding opens it (``PUT``, as the ``socle-platform`` service account or an operator);
the tenant reads its own, platform roles read any. The caller's token names no tenant when
it opens or reads another's account, so the work runs under ``system_tenant``: RLS still
applies, in the context of the tenant named by the path.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from sqlalchemy.ext.asyncio import AsyncSession

from socle_billing.domain.metering_accounts import services
from socle_billing.domain.metering_accounts.schemas import MeteringAccountIn, MeteringAccountOut, MeteringAccountPage
from socle_core import access
from socle_core.auth import Principal, system_tenant
from socle_core.db import bind_tenant
from socle_core.inputs import MAX_INT32
from socle_core.roles import Role
from socle_core.tenant import TenantId

#: Realm roles that read every tenant's account (metadata only), besides the platform client.
PLATFORM_READERS = (Role.OPERATOR, Role.AUDITOR)
#: Realm roles that read their own tenant's account; another tenant's does not exist (404).
TENANT_READERS = (Role.EPCI_ADMIN, Role.COMMUNE_ADMIN)


def _reader_tenant(principal: Principal, tenant_id: uuid.UUID) -> TenantId:
    """The tenant whose account is read: the caller's own, or (platform callers) the one the path names."""
    if principal.tenant is not None and principal.tenant.uuid == tenant_id:
        return principal.tenant
    return system_tenant(tenant_id, reason="billing: platform read of a metering account")


class MeteringAccountController(Controller):
    path = "/v1/metering-accounts"
    tags = ["metering accounts"]

    @put(
        "/{tenant_id:uuid}",
        summary="Open the tenant's metering account, or answer the one already open",
        access=access.platform(Role.OPERATOR, platform_client=True, why="onboarding (platform client)"),
    )
    async def open_account(
        self,
        tenant_id: FromPath[uuid.UUID],
        data: JSONBody[MeteringAccountIn],
        request: Request[Principal, Any, Any],
        db_session: NamedDependency[AsyncSession],
        state: State,
    ) -> Response[MeteringAccountOut]:
        """201 when this call opened it, 200 when it was already open with the same key (idempotent)."""
        tenant = system_tenant(tenant_id, reason="billing: open a metering account")
        bind_tenant(db_session, tenant)
        account, opened = await services.open_account(db_session, tenant, data, request.user.actor)
        return Response(MeteringAccountOut.of(account), status_code=HTTP_201_CREATED if opened else HTTP_200_OK)

    @get(
        "/{tenant_id:uuid}",
        summary="A tenant's metering account",
        access=access.tenant_resource(
            *TENANT_READERS,
            roles=PLATFORM_READERS,
            platform_client=True,
            tenant_path="tenant_id",
            target="tenant",
            why="a tenant reads only its own metering account",
        ),
    )
    async def get_account(
        self,
        tenant_id: FromPath[uuid.UUID],
        request: Request[Principal, Any, Any],
        db_session: NamedDependency[AsyncSession],
    ) -> MeteringAccountOut:
        tenant = _reader_tenant(request.user, tenant_id)
        if request.user.tenant != tenant:  # a platform read: the session takes the named tenant's context
            bind_tenant(db_session, tenant)
        return MeteringAccountOut.of(await services.get_account(db_session, tenant))

    @get(
        "/",
        summary="Every tenant's metering account, in opening order (platform roles)",
        access=access.platform(*PLATFORM_READERS, platform_client=True, why="every account: operator and auditor"),
    )
    async def list_accounts(
        self,
        state: State,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 50,
        offset: Annotated[int, QueryParameter(ge=0, le=MAX_INT32)] = 0,
    ) -> MeteringAccountPage:
        items, total = await services.list_accounts(state.db_session_maker, limit=limit, offset=offset)
        return MeteringAccountPage(
            items=[MeteringAccountOut.of(a) for a in items], total=total, limit=limit, offset=offset
        )
