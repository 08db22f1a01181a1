"""HTTP API of data-sharing grants: a commune or the EPCI shares its data with another tenant.

The grantor is always the caller's own tenant (a grant on someone else's data cannot even be
expressed); the grantee and the grantor see the grant, only the grantor revokes it. Another
tenant's grant does not exist for the caller (404), and asking for it is recorded as refused.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from sqlalchemy.ext.asyncio import AsyncSession

from socle_core import access
from socle_core.audit import record_detached
from socle_core.auth import Principal
from socle_core.errors import NotFound
from socle_core.inputs import MAX_INT32
from socle_core.roles import Role
from socle_core.tenant import TenantId
from socle_tenancy.db.models import Dataset
from socle_tenancy.domain.audit.services import actor_of
from socle_tenancy.domain.grants import services
from socle_tenancy.domain.grants.schemas import GrantIn, GrantOut, GrantPage, GrantStatus, RevokeIn, Side

GRANTORS = (Role.EPCI_ADMIN, Role.COMMUNE_ADMIN)
READERS = (*GRANTORS, Role.COMMUNE_AGENT)
_GRANT_VIEW = "/v1/grants/{grant_id:uuid}"


async def _refused(state: State, principal: Principal, tenant: TenantId, action: str, grant_id: uuid.UUID) -> None:
    await record_detached(
        state.db_engine,
        tenant,
        actor=actor_of(principal),
        action=action,
        target=f"grant:{grant_id}",
        details={"reason": "no such grant for this tenant"},
    )


class GrantController(Controller):
    path = "/v1/grants"
    tags = ["grants"]

    @post("/", access=access.tenant_own(*GRANTORS, why="the caller's tenant grants"))
    async def create(
        self,
        data: JSONBody[GrantIn],
        request: Request[Principal, Any, Any],
        db_session: NamedDependency[AsyncSession],
        caller_tenant: NamedDependency[TenantId],
    ) -> Response[GrantOut]:
        """Share the caller's tenant's devices or readings (all, or one device's) with another tenant."""
        grant = await services.create_grant(db_session, caller_tenant, actor_of(request.user), data)
        return Response(GrantOut.of(grant), status_code=HTTP_201_CREATED)

    @get("/", access=access.tenant_own(*READERS, why="grants the caller's tenant gave or received"))
    async def list_grants(
        self,
        caller_tenant: NamedDependency[TenantId],
        db_session: NamedDependency[AsyncSession],
        side: FromQuery[Side | None] = None,
        status: FromQuery[GrantStatus | None] = None,
        dataset: FromQuery[Dataset | None] = None,
        limit: Annotated[int, Parameter(ge=1, le=200)] = 50,
        offset: Annotated[int, Parameter(ge=0, le=MAX_INT32)] = 0,
    ) -> GrantPage:
        """Grants the caller's tenant gave or received, newest first; offset pagination."""
        items, total = await services.list_grants(
            db_session, caller_tenant, side=side, status=status, dataset=dataset, limit=limit, offset=offset
        )
        return GrantPage(items=[GrantOut.of(g) for g in items], total=total, limit=limit, offset=offset)

    @get("/{grant_id:uuid}", access=access.tenant_resource(*READERS, target="grant", why="a grant between others"))
    async def get_grant(
        self,
        grant_id: FromPath[uuid.UUID],
        request: Request[Principal, Any, Any],
        db_session: NamedDependency[AsyncSession],
        state: State,
        caller_tenant: NamedDependency[TenantId],
    ) -> GrantOut:
        tenant = caller_tenant
        try:
            return GrantOut.of(await services.get_grant(db_session, tenant, grant_id))
        except NotFound:
            await _refused(state, request.user, tenant, "grants.read", grant_id)
            raise

    @post(
        "/{grant_id:uuid}/revoke",
        status_code=HTTP_200_OK,
        access=access.tenant_resource(
            *GRANTORS,
            target="grant",
            body={"reason": "sonde du rapport d'isolation"},
            why="revoke another's grant",
            view=_GRANT_VIEW,
        ),
    )
    async def revoke(
        self,
        grant_id: FromPath[uuid.UUID],
        request: Request[Principal, Any, Any],
        db_session: NamedDependency[AsyncSession],
        state: State,
        caller_tenant: NamedDependency[TenantId],
        data: JSONBody[RevokeIn | None] = None,
    ) -> GrantOut:
        """End a grant now; revoking a revoked grant answers the same grant and changes nothing."""
        tenant = caller_tenant
        try:
            grant = await services.revoke_grant(
                db_session, tenant, actor_of(request.user), grant_id, data.reason if data else None
            )
        except NotFound:
            await _refused(state, request.user, tenant, "grants.revoke", grant_id)
            raise
        return GrantOut.of(grant)
