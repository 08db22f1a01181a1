"""What a run of the invitation job did, as the API shows it."""

from __future__ import annotations

from pydantic import BaseModel, Field


class InvitationReport(BaseModel):
    tenants: int = Field(description="Tenants that had pending invitations")
    accepted: int = Field(description="Invitations accepted since the previous run: membership and role given")
    expired: int = Field(description="Invitations whose link expired unanswered (accounts never activated removed)")
    refused: int = Field(description="Invitations accepted by an account that may no longer be enrolled")
    pending: int = Field(description="Invitations still waiting for their answer")
