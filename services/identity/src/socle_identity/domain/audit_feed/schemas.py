"""What an audit-feed run did, as the API shows it."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field


class StreamReport(BaseModel):
    """One Keycloak event store read in one run."""

    stream: Literal["events", "admin-events"] = Field(
        description="events: logins, logouts, tokens (users and service accounts); admin-events: admin API changes"
    )
    read_from: dt.datetime = Field(description="Events stored from this time on were read (the cursor minus overlap)")
    read: int = Field(description="Events Keycloak returned")
    imported: int = Field(description="Events written to the audit log by this run")
    already_imported: int = Field(description="Events read again and skipped: a previous run imported them")
    entries: int = Field(description="Audit entries written: one per tenant chain an event concerns")
    imported_until: dt.datetime | None = Field(description="Time of the newest event imported so far (the cursor)")


class AuditFeedReport(BaseModel):
    streams: list[StreamReport]
