"""Placing agents who log in through ProConnect in the organization of their commune.

ProConnect is one identity provider for every commune, so Keycloak cannot derive an
organization from it. Its ``siret`` claim (stored as the user attribute ``siret``, which only
administrators may edit) names the agent's employer: a SIRET is the employer's SIREN plus 5
digits, and each tenant's organization carries its SIREN in the attribute ``siren``.

Keycloak records the logins (events stored in the realm). A run reads the brokered logins
since the previous run, and adds each agent who has a ``siret``, a ProConnect link and no
organization yet to the one organization with that SIREN. Agents already in an organization
are left alone, so runs are idempotent; an unknown SIREN is logged and the agent stays
without any tenant (no tenant-scoped access).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
from typing import Any
from uuid import UUID

import structlog

from socle_identity.domain.placement.schemas import Placement, PlacementReport, Reason
from socle_identity.keycloak import KeycloakAdminClient
from socle_identity.keycloak.organizations import TENANT_ATTRIBUTE

log = structlog.get_logger("socle.identity.placement")

SIREN_ATTRIBUTE = "siren"
SIRET_ATTRIBUTE = "siret"
#: Keycloak event types after which a brokered agent may need a placement.
EVENT_TYPES = ("IDENTITY_PROVIDER_FIRST_LOGIN", "REGISTER", "LOGIN")
_SIRET = re.compile(r"^[0-9]{14}$")
_PAGE = 200
#: Events are read again this far before the previous run, so one stored late is not missed.
_OVERLAP_MS = 60_000


class PlacementSync:
    """Reads Keycloak's recent brokered logins and places agents by SIRET; one run at a time."""

    def __init__(self, keycloak: KeycloakAdminClient, *, idp_alias: str, lookback_seconds: int) -> None:
        self.keycloak = keycloak
        self.idp_alias = idp_alias
        self.lookback_ms = lookback_seconds * 1000
        self._since_ms: int | None = None
        self._lock = asyncio.Lock()

    async def run(self) -> PlacementReport:
        async with self._lock:
            started_ms = int(time.time() * 1000)
            since_ms = self._since_ms if self._since_ms is not None else started_ms - self.lookback_ms
            user_ids = await self._brokered_users(since_ms)
            report = PlacementReport(
                since=dt.datetime.fromtimestamp(since_ms / 1000, dt.UTC),
                users_seen=len(user_ids),
                already_members=0,
                placed=[],
                unplaced=[],
            )
            organizations: dict[str, list[dict[str, Any]]] = {}
            for user_id in user_ids:
                await self._place(user_id, organizations, report)
            self._since_ms = started_ms - _OVERLAP_MS
            if report.placed or report.unplaced:
                log.info(
                    "placement_run",
                    users_seen=report.users_seen,
                    placed=len(report.placed),
                    unplaced=len(report.unplaced),
                )
            return report

    async def _brokered_users(self, since_ms: int) -> list[str]:
        """Users of the ProConnect logins stored since ``since_ms``, oldest first, each once."""
        seen: dict[str, None] = {}
        first = 0
        while True:
            params: list[tuple[str, str | int]] = [("type", t) for t in EVENT_TYPES]
            params += [("dateFrom", since_ms), ("first", first), ("max", _PAGE)]
            page = (await self.keycloak.request("GET", "/events", params=params)).json()
            for event in reversed(page):
                details = event.get("details") or {}
                if event.get("userId") and details.get("identity_provider") == self.idp_alias:
                    seen.setdefault(str(event["userId"]), None)
            if len(page) < _PAGE:
                return list(seen)
            first += _PAGE

    async def _place(
        self, user_id: str, organizations: dict[str, list[dict[str, Any]]], report: PlacementReport
    ) -> None:
        response = await self.keycloak.request("GET", f"/users/{user_id}", expected=(404,))
        if response.status_code == 404:
            return  # deleted since it logged in
        user = response.json()
        memberships = (await self.keycloak.request("GET", f"/organizations/members/{user_id}/organizations")).json()
        if memberships:
            report.already_members += 1
            return
        links = (await self.keycloak.request("GET", f"/users/{user_id}/federated-identity")).json()
        if not any(link.get("identityProvider") == self.idp_alias for link in links):
            return  # the siret did not come from ProConnect
        values = (user.get("attributes") or {}).get(SIRET_ATTRIBUTE) or []
        siret = str(values[0]) if values else None
        outcome = Placement(user_id=user_id, username=user.get("username"), siret=siret)

        def unplaced(reason: Reason) -> None:
            outcome.reason = reason
            report.unplaced.append(outcome)
            log.warning("agent_not_placed", user_id=user_id, siret=siret, reason=reason)

        if siret is None or not _SIRET.match(siret):
            unplaced("invalid-siret")
            return
        siren = siret[:9]
        if siren not in organizations:
            organizations[siren] = await self._organizations_of(siren)
        found = organizations[siren]
        if not found:
            unplaced("unknown-siren")
            return
        if len(found) > 1:
            unplaced("ambiguous-siren")
            return
        organization = found[0]
        if not organization.get("enabled", True):
            unplaced("organization-disabled")
            return
        await self.keycloak.request(
            "POST", f"/organizations/{organization['id']}/members", json=user_id, expected=(409,)
        )
        tenant = ((organization.get("attributes") or {}).get(TENANT_ATTRIBUTE) or [None])[0]
        outcome.organization = str(organization["alias"])
        outcome.tenant_id = UUID(tenant) if tenant else None
        report.placed.append(outcome)
        log.info("agent_placed", user_id=user_id, organization=outcome.organization, tenant_id=tenant)

    async def _organizations_of(self, siren: str) -> list[dict[str, Any]]:
        """Organizations whose ``siren`` attribute is exactly this SIREN."""
        found = (
            await self.keycloak.request(
                "GET",
                "/organizations",
                params={"q": f"{SIREN_ATTRIBUTE}:{siren}", "briefRepresentation": "false", "max": 10},
            )
        ).json()
        return [o for o in found if siren in ((o.get("attributes") or {}).get(SIREN_ATTRIBUTE) or [])]
