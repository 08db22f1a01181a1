"""Writing to the tamper-evident audit log, from any service.

The log lives in the tenancy schema (ADR 0007): one hash chain per tenant, appended only by
the database function ``tenancy.append_audit``, which every service's application role may
execute (group ``socle_audit_writer``). ``record`` writes inside the caller's transaction, so
the entry commits or rolls back with the action it records; ``record_detached`` writes in a
short transaction of its own, opened in the given tenant's context, for what must be kept
although the request fails (a refused attempt whose request transaction rolls back).
``record_refusal`` is the detached write of refusals a caller can repeat at will
(cross-tenant attempts): the first of a window is
appended, the next ones of the same caller and kind are counted and appended as one summary
entry (``details.suppressed``) when the window is over, so a flood cannot flood the log.

The database binds every write to the tenant context of the transaction: a role appends
only to the chain of the tenant in context (no context: the platform's chain,
``PLATFORM_TENANT``), of a tenant the registry knows. Code that records for another tenant
than its request's opens that tenant's context for the write (``socle_core.db.tenant_context``
with a ``TenantId``); platform-wide jobs writing many chains are an explicit list of roles in
tenancy's migrations (ADR 0007). Details are metadata (ids, names, reasons): never readings,
never secrets.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from typing import Any, Literal, get_args

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from socle_core.errors import NotFound
from socle_core.tenant import TenantId

#: The chain of platform-level events (no tenant): the nil UUID.
PLATFORM_TENANT = uuid.UUID(int=0)

Outcome = Literal["success", "refused", "failure"]
OUTCOMES: frozenset[str] = frozenset(get_args(Outcome))
#: ``area.verb`` in lower case, e.g. ``grants.create``, ``onboarding.first_admin``, ``auditor.read``.
ACTION = re.compile(r"[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)+")
#: The bounds ``tenancy.append_audit`` enforces too.
MAX_ACTION, MAX_ACTOR, MAX_TARGET, MAX_DETAILS = 100, 255, 500, 16384
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

#: SQLSTATE of ``tenancy.append_audit`` for a chain of a tenant the registry does not know.
_UNKNOWN_TENANT = "23503"
_CONTEXT = text("SELECT set_config('app.tenant_id', :tenant, true)")
_APPEND = text("SELECT tenancy.append_audit(:tenant, :actor, :action, :target, :outcome, CAST(:details AS jsonb))")
_APPEND_REFUSAL = text(
    "SELECT tenancy.append_refusal(:tenant, :actor, :action, :target, :outcome, CAST(:details AS jsonb), "
    ":kind, :window_seconds)"
)

#: How long repeated refusals of one caller and kind share one audit entry (and one summary).
REFUSAL_WINDOW_SECONDS = 60


def chain_of(tenant: TenantId | uuid.UUID | None) -> uuid.UUID:
    """The chain an entry belongs to: the tenant's, or the platform's when there is none."""
    if tenant is None:
        return PLATFORM_TENANT
    return tenant.uuid if isinstance(tenant, TenantId) else tenant


def _parameters(
    tenant: TenantId | uuid.UUID | None,
    actor: str,
    action: str,
    target: str | None,
    outcome: str,
    details: Mapping[str, Any] | None,
) -> dict[str, Any]:
    if not actor.strip() or len(actor) > MAX_ACTOR or _CONTROL.search(actor):
        raise ValueError(
            f"an audit entry needs an actor of 1 to {MAX_ACTOR} printable characters "
            "(a subject, a client id or 'system:<task>')"
        )
    if len(action) > MAX_ACTION or not ACTION.fullmatch(action):
        raise ValueError(f"audit action {action!r} must look like 'area.verb' (lower case)")
    if target is not None and (len(target) > MAX_TARGET or _CONTROL.search(target)):
        raise ValueError(f"an audit target is at most {MAX_TARGET} printable characters")
    if outcome not in OUTCOMES:
        raise ValueError(f"audit outcome must be one of {sorted(OUTCOMES)}, not {outcome!r}")
    body = json.dumps(dict(details or {}), default=str, ensure_ascii=False)
    if len(body.encode()) > MAX_DETAILS:
        raise ValueError(f"audit details are at most {MAX_DETAILS} bytes of JSON, not {len(body.encode())}")
    return {
        "tenant": chain_of(tenant),
        "actor": actor,
        "action": action,
        "target": target,
        "outcome": outcome,
        "details": body,
    }


async def _append(executor: AsyncSession | AsyncConnection, parameters: dict[str, Any]) -> int:
    try:
        seq = await executor.scalar(_APPEND, parameters)
    except DBAPIError as exc:
        if getattr(exc.orig, "pgcode", None) == _UNKNOWN_TENANT:  # bad input: no such tenant; else a bug
            raise NotFound(
                f"aucun locataire {parameters['tenant']} dans le registre des locataires : "
                "rien ne peut être consigné à son journal d'audit",
                tenant_id=str(parameters["tenant"]),
            ) from exc
        raise
    if seq is None:  # the function always returns the new sequence number
        raise RuntimeError("tenancy.append_audit returned no sequence number")
    return int(seq)


async def record(
    session: AsyncSession | AsyncConnection,
    tenant: TenantId | uuid.UUID | None,
    *,
    actor: str,
    action: str,
    target: str | None = None,
    outcome: Outcome = "success",
    details: Mapping[str, Any] | None = None,
) -> int:
    """Append an entry to the tenant's chain in the caller's transaction; returns its sequence number.

    The transaction's tenant context must be that tenant (none for the platform chain), or
    the database refuses the write; a tenant the registry does not know is a ``NotFound``.
    The chain's per-tenant lock is held until the caller's transaction ends: record late in
    a unit of work, and record for two tenants in the order of their ids.
    """
    return await _append(session, _parameters(tenant, actor, action, target, outcome, details))


async def record_detached(
    engine: AsyncEngine,
    tenant: TenantId | None,
    *,
    actor: str,
    action: str,
    target: str | None = None,
    outcome: Outcome = "refused",
    details: Mapping[str, Any] | None = None,
) -> int:
    """Append an entry in a transaction of its own, committed at once (kept whatever the caller does).

    The transaction runs in ``tenant``'s context (a ``TenantId``, which only the auth layer
    issues; ``None`` for the platform chain), the same context the entry is bound to.
    """
    if tenant is not None and not isinstance(tenant, TenantId):
        raise TypeError("record_detached opens the tenant's context: give a TenantId (socle_core.auth), not an id")
    parameters = _parameters(tenant, actor, action, target, outcome, details)
    async with engine.begin() as connection:
        await connection.execute(_CONTEXT, {"tenant": "" if tenant is None else str(tenant)})
        return await _append(connection, parameters)


async def record_refusal(
    engine: AsyncEngine,
    tenant: TenantId | None,
    *,
    actor: str,
    action: str,
    kind: str,
    target: str | None = None,
    outcome: Outcome = "refused",
    details: Mapping[str, Any] | None = None,
    window_seconds: int = REFUSAL_WINDOW_SECONDS,
) -> int | None:
    """``record_detached`` for a refusal, aggregated per (chain, actor, action, kind) and window.

    Returns the new entry's sequence number, or None when the refusal was counted into the
    current window (its summary entry is appended once the window is over).
    """
    if tenant is not None and not isinstance(tenant, TenantId):
        raise TypeError("record_refusal opens the tenant's context: give a TenantId (socle_core.auth), not an id")
    parameters = _parameters(tenant, actor, action, target, outcome, details)
    async with engine.begin() as connection:
        await connection.execute(_CONTEXT, {"tenant": "" if tenant is None else str(tenant)})
        seq = await connection.scalar(_APPEND_REFUSAL, {**parameters, "kind": kind, "window_seconds": window_seconds})
    return None if seq is None else int(seq)


__all__ = [
    "OUTCOMES",
    "PLATFORM_TENANT",
    "REFUSAL_WINDOW_SECONDS",
    "Outcome",
    "chain_of",
    "record",
    "record_detached",
    "record_refusal",
]
