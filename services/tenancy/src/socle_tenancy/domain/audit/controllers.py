"""HTTP API of the audit log: read a chain by page, export it as JSON Lines, verify the chains.

An auditor reads any tenant's chain (metadata only, and every such read is itself recorded
in that chain, so the tenant sees who looked); an EPCI or commune admin reads their own
tenant's chain. Naming another tenant's chain is a 404, recorded as a refused attempt.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.params import FromQuery, JSONBody, Parameter
from litestar.response import Stream
from litestar.status_codes import HTTP_200_OK
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from socle_core.audit import PLATFORM_TENANT, record, record_detached, record_refusal
from socle_core.auth import Principal, system_tenant
from socle_core.db import tenant_session
from socle_core.errors import InvalidInput, NotFound
from socle_core.tenant import TenantId
from socle_tenancy.domain.audit import services
from socle_tenancy.domain.audit.schemas import AuditEntryOut, AuditPage, VerdictOut, VerifyIn, export_line

AUDITOR = "auditor"
TENANT_READERS = ("epci-admin", "commune-admin")
VERIFIERS = (AUDITOR, "operator")
ACTION_FILTER = r"^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)*$"


async def _chain_for(principal: Principal, tenant: uuid.UUID | None, engine: AsyncEngine) -> tuple[TenantId, bool]:
    """The chain the caller may read, as a tenant context; and whether they read it as auditor."""
    if principal.has_any_role(AUDITOR):
        if tenant is None:
            detail = f"an auditor names the chain to read: ?tenant=<uuid> (the platform's own is {PLATFORM_TENANT})"
            raise InvalidInput(detail, errors=[{"location": "query", "field": "query.tenant", "detail": detail}])
        return system_tenant(tenant, reason="auditor reads the audit log"), True
    principal.require_role(*TENANT_READERS)
    own = principal.require_tenant()
    if tenant is not None and tenant != own.uuid:
        await record_refusal(
            engine,
            own,
            actor=services.actor_of(principal),
            action="audit.read",
            kind="another_chain",
            target=f"tenant:{tenant}",
            details={"reason": "the audit log of another tenant was requested"},
        )
        raise NotFound("no audit log of this tenant for this account")
    return own, False


def _filters(since: dt.datetime | None, until: dt.datetime | None, action: str | None) -> services.Filters:
    if since is not None and until is not None and since >= until:
        detail = "since must be before until"
        raise InvalidInput(detail, errors=[{"location": "query", "field": "query.since", "detail": detail}])
    return services.Filters(since=since, until=until, action=action)


def _maker(state: State) -> async_sessionmaker[AsyncSession]:
    return state.db_session_maker  # type: ignore[no-any-return]


class AuditController(Controller):
    """No request transaction: each read runs in the context of the chain it reads."""

    path = "/v1/audit"
    tags = ["audit"]

    @get("/entries")
    async def list_entries(
        self,
        request: Request[Principal, Any, Any],
        state: State,
        tenant: FromQuery[uuid.UUID | None] = None,
        since: FromQuery[dt.datetime | None] = None,
        until: FromQuery[dt.datetime | None] = None,
        action: Annotated[str | None, Parameter(pattern=ACTION_FILTER, max_length=100)] = None,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
        cursor: Annotated[str | None, Parameter(max_length=100)] = None,
    ) -> AuditPage:
        """A chain's entries, newest first; ``action=grants`` matches every ``grants.*`` action."""
        chain, as_auditor = await _chain_for(request.user, tenant, state.db_engine)
        filters = _filters(since, until, action)
        async with tenant_session(_maker(state), chain) as session:
            await services.close_refusal_windows(session, chain.uuid)
            rows, next_cursor = await services.list_entries(session, chain.uuid, filters, limit=limit, cursor=cursor)
            if as_auditor:
                await record(
                    session,
                    chain,
                    actor=services.actor_of(request.user),
                    action="auditor.read",
                    target="audit_log",
                    details={
                        "since": since,
                        "until": until,
                        "action": action,
                        "cursor": cursor,
                        "returned": len(rows),
                    },
                )
        return AuditPage(items=[AuditEntryOut.of(r) for r in rows], next_cursor=next_cursor)

    @get("/export", media_type="application/x-ndjson")
    async def export(
        self,
        request: Request[Principal, Any, Any],
        state: State,
        tenant: FromQuery[uuid.UUID | None] = None,
        since: FromQuery[dt.datetime | None] = None,
        until: FromQuery[dt.datetime | None] = None,
    ) -> Stream:
        """The chain in chain order as JSON Lines, with every hashed field: it verifies offline."""
        chain, as_auditor = await _chain_for(request.user, tenant, state.db_engine)
        filters = _filters(since, until, None)
        async with tenant_session(_maker(state), chain) as session:
            await services.close_refusal_windows(session, chain.uuid)
        await record_detached(
            state.db_engine,
            chain,
            actor=services.actor_of(request.user),
            action="auditor.export" if as_auditor else "audit.export",
            target="audit_log",
            outcome="success",
            details={"since": since, "until": until},
        )

        async def lines() -> AsyncIterator[bytes]:
            async for row in services.stream_entries(_maker(state), chain, filters):
                yield (json.dumps(export_line(row), ensure_ascii=False) + "\n").encode()

        return Stream(
            lines(),
            media_type="application/x-ndjson",
            headers={"Content-Disposition": f'attachment; filename="audit-{chain.uuid}.jsonl"'},
        )

    @post("/verify", status_code=HTTP_200_OK)
    async def verify(
        self, request: Request[Principal, Any, Any], state: State, data: JSONBody[VerifyIn | None] = None
    ) -> VerdictOut:
        """Recompute every chain (or one) from its stored fields; the verdict lists each finding."""
        request.user.require_role(*VERIFIERS)
        tenant = data.tenant if data is not None else None
        verdict = await services.verify(_maker(state), [tenant] if tenant else None)
        await record_detached(
            state.db_engine,
            tenant,
            actor=services.actor_of(request.user),
            action=f"{AUDITOR if request.user.has_any_role(AUDITOR) else 'operator'}.verify",
            target="audit_log",
            outcome="success",
            details={
                "verdict": "intact" if verdict.ok else "tampered",
                "chains": verdict.chains,
                "entries": verdict.entries,
                "findings": len(verdict.findings),
            },
        )
        return VerdictOut.of(verdict)
