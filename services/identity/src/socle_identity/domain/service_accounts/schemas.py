"""Service accounts as the API shows them; a secret appears only in the answer that issued it."""

from __future__ import annotations

import datetime as dt
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from socle_core.schemas import label


class ServiceAccountCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: label(100) = Field(description="What the account is for, e.g. 'TTS uplinks'")
    access: Literal["read", "write"] = Field(
        description="write: sends readings for the commune (role device); read: reads shared data (role partner)"
    )


class ServiceAccount(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    client_id: str
    name: str
    access: Literal["read", "write"]
    created_at: dt.datetime
    revoked_at: dt.datetime | None


class IssuedServiceAccount(ServiceAccount):
    """Returned once, at creation or rotation: store the secret now, it cannot be read again."""

    client_secret: str
    token_endpoint: str
