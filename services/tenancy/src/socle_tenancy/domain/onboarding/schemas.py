"""Request and response bodies of the onboarding workflow."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from socle_core.inputs import MAX_INT32
from socle_core.schemas import label
from socle_tenancy.db.models import OnboardingStep
from socle_tenancy.domain.tenants.schemas import TenantOut

_EMAIL = r"^[^@\s]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$"
_DOMAIN = r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
EmailDomain = Annotated[str, StringConstraints(pattern=_DOMAIN, to_lower=True, strip_whitespace=True, max_length=253)]


class QuotasIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_devices: int | None = Field(default=None, ge=0, le=MAX_INT32)
    max_readings_per_day: int | None = Field(default=None, ge=0, le=MAX_INT32)
    storage_gb: int | None = Field(default=None, ge=0, le=MAX_INT32)


class OnboardingIn(BaseModel):
    """What the workflow needs besides the official data; on a retry every field may be omitted."""

    model_config = ConfigDict(extra="forbid")

    first_admin_email: str | None = Field(
        default=None, pattern=_EMAIL, max_length=254, description="Invited as the tenant's first admin"
    )
    email_domains: list[EmailDomain] | None = Field(
        default=None,
        max_length=20,
        description="Domains of the organisation's e-mail addresses, e.g. mairie-sommieres.fr",
    )
    display_name: label(200) | None = None
    quotas: QuotasIn | None = None


class StepOut(BaseModel):
    step: str
    position: int
    status: str
    attempts: int
    result: dict[str, Any]
    last_error: str | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None

    @classmethod
    def of(cls, step: OnboardingStep) -> StepOut:
        return cls.model_validate(step, from_attributes=True)


class OnboardingOut(BaseModel):
    tenant: TenantOut
    completed: bool
    steps: list[StepOut]
