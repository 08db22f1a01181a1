"""Request and response bodies of metering accounts."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from socle_billing.db.models import MeteringAccount

TenantKind = Literal["commune", "epci"]
_KEY = r"^(commune-[0-9][0-9AB][0-9]{3}|epci-[0-9]{9})$"


class MeteringAccountIn(BaseModel):
    """What billing needs to know of the tenant; the tenant itself is named by the path."""

    model_config = ConfigDict(extra="forbid")

    tenant_key: str = Field(pattern=_KEY, description="The tenant's key: commune-<INSEE> or epci-<SIREN>")
    kind: TenantKind

    @model_validator(mode="after")
    def _key_matches_kind(self) -> Self:
        if not self.tenant_key.startswith(f"{self.kind}-"):
            raise ValueError(
                f"tenant_key {self.tenant_key!r} n'est pas la clé d'une collectivité {self.kind} ({self.kind}-…)"
            )
        return self


class MeteringAccountOut(BaseModel):
    tenant_id: uuid.UUID
    tenant_key: str
    kind: TenantKind
    status: Literal["open", "closed"]
    opened_at: dt.datetime
    opened_by: str

    @classmethod
    def of(cls, account: MeteringAccount) -> MeteringAccountOut:
        return cls.model_validate(account, from_attributes=True)


class MeteringAccountPage(BaseModel):
    items: list[MeteringAccountOut]
    total: int
    limit: int
    offset: int
