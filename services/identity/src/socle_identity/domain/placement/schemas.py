"""What a placement run did, as the API shows it."""

from __future__ import annotations

import datetime as dt
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

Reason = Literal["unknown-siren", "ambiguous-siren", "invalid-siret", "organization-disabled"]


class Placement(BaseModel):
    user_id: str
    username: str | None
    siret: str | None
    organization: str | None = Field(default=None, description="Alias of the organization the agent joined")
    tenant_id: UUID | None = None
    reason: Reason | None = Field(default=None, description="Why the agent was left unplaced")


class PlacementReport(BaseModel):
    """One run: brokered agents seen in Keycloak's login events since ``since``."""

    since: dt.datetime
    users_seen: int
    already_members: int
    placed: list[Placement]
    unplaced: list[Placement]
