"""Dependencies of the registry's HTTP handlers."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.di import NamedDependency
from litestar.params import FromPath
from sqlalchemy.ext.asyncio import AsyncSession

from socle_core.auth import Principal
from socle_tenancy.db.models import Tenant
from socle_tenancy.domain.tenants.services import administered_tenant


async def provide_administered_tenant(
    ref: FromPath[str], request: Request[Principal, Any, Any], db_session: NamedDependency[AsyncSession]
) -> Tenant:
    """The tenant of the path's ``ref``, for the handlers only the EPCI's administrators may call."""
    return await administered_tenant(db_session, request.user, ref)
