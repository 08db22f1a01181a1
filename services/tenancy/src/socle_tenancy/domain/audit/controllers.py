"""HTTP API of the audit log: read a chain by page, export it as JSON Lines, verify the chains.

An auditor reads any tenant's chain (metadata only, and every such read is itself recorded
in that chain, so the tenant sees who looked); an EPCI or commune admin reads their own
tenant's chain. Naming another tenant's chain is a 404, recorded as a refused attempt.
Auditors and operators fetch every chain's head, signed (to keep outside the platform), and
verify the chains, also against heads signed or exports made earlier.
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

from socle_core import access
from socle_core.audit import PLATFORM_TENANT, record, record_detached, record_refusal
from socle_core.auth import Principal, system_tenant
from socle_core.db import tenant_session
from socle_core.errors import InvalidInput, NotFound, ServiceUnavailable
from socle_core.roles import Role
from socle_core.tenant import TenantId
from socle_tenancy.config import TenancySettings
from socle_tenancy.domain.access import AUDITORS
from socle_tenancy.domain.audit import heads, services, signing
from socle_tenancy.domain.audit.chain import Anchor
from socle_tenancy.domain.audit.schemas import (
    AuditEntryOut,
    AuditPage,
    SignedHeadsOut,
    VerdictOut,
    VerifyIn,
    export_line,
)

AUDITOR = Role.AUDITOR
TENANT_READERS = (Role.EPCI_ADMIN, Role.COMMUNE_ADMIN)
#: An auditor reads any chain (naming it); an admin reads only its own tenant's (404 for another).
CHAIN_READERS = access.tenant_resource(
    *TENANT_READERS, roles=[AUDITOR], target="tenant", query="tenant", why="another's chain"
)
ACTION_FILTER = r"^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)*$"


async def _chain_for(principal: Principal, tenant: uuid.UUID | None, engine: AsyncEngine) -> tuple[TenantId, bool]:
    """The chain the caller may read, as a tenant context; and whether they read it as auditor."""
    if principal.has_any_role(AUDITOR):
        if tenant is None:
            detail = (
                f"un auditeur indique la chaîne à lire : ?tenant=<uuid> (celle de la plateforme est {PLATFORM_TENANT})"
            )
            raise InvalidInput(detail, errors=[{"location": "query", "field": "query.tenant", "detail": detail}])
        return system_tenant(tenant, reason="auditor reads the audit log"), True
    own = principal.require_tenant()  # the route admitted only admins whose token names their tenant
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
        raise NotFound("aucun journal d'audit de cette collectivité pour ce compte")
    return own, False


def _filters(since: dt.datetime | None, until: dt.datetime | None, action: str | None) -> services.Filters:
    if since is not None and until is not None and since >= until:
        detail = "since doit précéder until"
        raise InvalidInput(detail, errors=[{"location": "query", "field": "query.since", "detail": detail}])
    return services.Filters(since=since, until=until, action=action)


def _maker(state: State) -> async_sessionmaker[AsyncSession]:
    return state.db_session_maker  # type: ignore[no-any-return]


def _signer(state: State) -> signing.HeadSigner:
    settings: TenancySettings = state.settings
    try:
        return signing.HeadSigner(signing.check_key(settings.audit_heads_signing_key, settings.environment))
    except signing.SigningKeyError as exc:
        raise ServiceUnavailable(f"les têtes des chaînes d'audit ne peuvent pas être signées : {exc}") from exc


def _anchors(state: State, records: list[dict[str, Any]], tenant: uuid.UUID | None) -> list[Anchor]:
    """The anchors of the request, signed heads checked with this service's own key."""
    try:
        verifier = signing.HeadVerifier([_signer(state).public_key])
    except ServiceUnavailable:
        verifier = None  # export lines need no key; a signed head then gets a clear error
    try:
        anchors = heads.anchors_of(records, verifier)
    except heads.AnchorError as exc:
        detail = (
            f"l'élément {exc.index} de « against » n'est ni une tête signée valide ni une ligne d'export "
            f"du journal d'audit : {exc.detail}"
        )
        raise InvalidInput(
            detail, errors=[{"location": "body", "field": f"body.against[{exc.index}]", "detail": exc.detail}]
        ) from exc
    return [a for a in anchors if tenant is None or a.tenant_id == tenant]


def _platform_role(principal: Principal) -> str:
    return AUDITOR if principal.has_any_role(AUDITOR) else "operator"


class AuditController(Controller):
    """No request transaction: each read runs in the context of the chain it reads."""

    path = "/v1/audit"
    tags = ["audit"]

    @get("/entries", access=CHAIN_READERS)
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

    @get("/export", media_type="application/x-ndjson", access=CHAIN_READERS)
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

    @post("/verify", status_code=HTTP_200_OK, access=access.platform(*AUDITORS, why="auditor and operator"))
    async def verify(
        self, request: Request[Principal, Any, Any], state: State, data: JSONBody[VerifyIn | None] = None
    ) -> VerdictOut:
        """Recompute every chain (or one) from its stored fields; the verdict lists each finding."""
        tenant = data.tenant if data is not None else None
        anchors = _anchors(state, data.against, tenant) if data is not None and data.against else []
        verdict = await services.verify(_maker(state), [tenant] if tenant else None, anchors)
        await record_detached(
            state.db_engine,
            system_tenant(tenant, reason="record a verification in the verified chain") if tenant else None,
            actor=services.actor_of(request.user),
            action=f"{_platform_role(request.user)}.verify",
            target="audit_log",
            outcome="success",
            details={
                "verdict": "intact" if verdict.ok else "tampered",
                "chains": verdict.chains,
                "entries": verdict.entries,
                "findings": len(verdict.findings),
                "anchors": len(anchors),
            },
        )
        return VerdictOut.of(verdict)

    @get("/heads", access=access.platform(*AUDITORS, why="auditor and operator: every chain's signed head"))
    async def signed_heads(self, request: Request[Principal, Any, Any], state: State) -> SignedHeadsOut:
        """Every chain's head, signed now: keep it outside the platform, then verify against it later."""
        signer = _signer(state)
        signed_at = dt.datetime.now(dt.UTC)
        records = heads.sign_heads(signer, await heads.read_heads(_maker(state)), signed_at)
        await record_detached(
            state.db_engine,
            None,
            actor=services.actor_of(request.user),
            action=f"{_platform_role(request.user)}.heads_read",
            target="audit_heads",
            outcome="success",
            details={"chains": len(records), "key_id": signer.key_id},
        )
        return SignedHeadsOut(
            algorithm=signing.ALGORITHM,
            key_id=signer.key_id,
            public_key=signer.public_key_b64,
            signed_at=signed_at,
            heads=records,
        )
