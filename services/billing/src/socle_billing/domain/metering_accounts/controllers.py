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

from socle_billing.config import BillingSettings
from socle_billing.domain.metering_accounts import services
from socle_billing.domain.metering_accounts.schemas import MeteringAccountIn, MeteringAccountOut, MeteringAccountPage
from socle_core.auth import Principal, system_tenant
from socle_core.db import bind_tenant
from socle_core.inputs import MAX_INT32
from socle_core.tenant import TenantId

#: Realm roles that open accounts (besides the platform service account, which has ``operator``).
OPENER_ROLES = ("operator",)
#: Realm roles that read every tenant's account (metadata only).
PLATFORM_READER_ROLES = ("operator", "auditor")
#: Realm roles that read their own tenant's account.
TENANT_READER_ROLES = ("epci-admin", "commune-admin")


def _is_platform_client(principal: Principal, settings: BillingSettings) -> bool:
    return principal.is_service_account and principal.client_id == settings.platform_client_id


def _actor(principal: Principal) -> str:
    return principal.subject or principal.client_id or "unknown"


def _reader_tenant(request: Request[Principal, Any, Any], settings: BillingSettings, tenant_id: uuid.UUID) -> TenantId:
    """The tenant whose account the caller may read: any for platform roles, else only its own (404)."""
    principal = request.user
    if _is_platform_client(principal, settings) or principal.has_any_role(*PLATFORM_READER_ROLES):
        return system_tenant(tenant_id, reason="billing: platform read of a metering account")
    tenant = principal.require_same_tenant(tenant_id, where="path", path=request.url.path)
    principal.require_role(*TENANT_READER_ROLES)
    return tenant


class MeteringAccountController(Controller):
    path = "/v1/metering-accounts"
    tags = ["metering accounts"]

    @put("/{tenant_id:uuid}", summary="Open the tenant's metering account, or answer the one already open")
    async def open_account(
        self,
        tenant_id: FromPath[uuid.UUID],
        data: JSONBody[MeteringAccountIn],
        request: Request[Principal, Any, Any],
        db_session: NamedDependency[AsyncSession],
        state: State,
    ) -> Response[MeteringAccountOut]:
        """201 when this call opened it, 200 when it was already open with the same key (idempotent)."""
        principal = request.user
        if not _is_platform_client(principal, state.settings):
            principal.require_role(*OPENER_ROLES)
        tenant = system_tenant(tenant_id, reason="billing: open a metering account")
        bind_tenant(db_session, tenant)
        account, opened = await services.open_account(db_session, tenant, data, _actor(principal))
        return Response(MeteringAccountOut.of(account), status_code=HTTP_201_CREATED if opened else HTTP_200_OK)

    @get("/{tenant_id:uuid}", summary="A tenant's metering account")
    async def get_account(
        self,
        tenant_id: FromPath[uuid.UUID],
        request: Request[Principal, Any, Any],
        db_session: NamedDependency[AsyncSession],
        state: State,
    ) -> MeteringAccountOut:
        tenant = _reader_tenant(request, state.settings, tenant_id)
        if request.user.tenant != tenant:  # a platform read: the session takes the named tenant's context
            bind_tenant(db_session, tenant)
        return MeteringAccountOut.of(await services.get_account(db_session, tenant))

    @get("/", summary="Every tenant's metering account, in opening order (platform roles)")
    async def list_accounts(
        self,
        request: Request[Principal, Any, Any],
        state: State,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 50,
        offset: Annotated[int, QueryParameter(ge=0, le=MAX_INT32)] = 0,
    ) -> MeteringAccountPage:
        principal = request.user
        if not _is_platform_client(principal, state.settings):
            principal.require_role(*PLATFORM_READER_ROLES)
        items, total = await services.list_accounts(state.db_session_maker, limit=limit, offset=offset)
        return MeteringAccountPage(
            items=[MeteringAccountOut.of(a) for a in items], total=total, limit=limit, offset=offset
        )
