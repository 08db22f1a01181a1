"""``GET /v1/me``: who the token says the caller is, as every service understands it."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get

from socle_core import access
from socle_core.auth import Principal
from socle_identity.domain.me.schemas import WhoAmI


class MeController(Controller):
    path = "/v1/me"
    tags = ["identity"]

    @get("/", access=access.tenant_own(why="the caller's own identity"))
    async def who_am_i(self, request: Request[Principal, Any, Any]) -> WhoAmI:
        principal = request.user
        return WhoAmI(
            subject=principal.subject,
            username=principal.username,
            email=principal.email,
            client_id=principal.client_id,
            roles=sorted(principal.roles),
            tenant_id=principal.tenant.uuid if principal.tenant else None,
            organization=principal.organization,
            organizations=list(principal.organizations),
        )
