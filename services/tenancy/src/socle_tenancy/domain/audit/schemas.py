"""Response bodies of the audit log API."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from socle_tenancy.domain.audit.chain import Finding
from socle_tenancy.domain.audit.services import Verdict


class AuditEntryOut(BaseModel):
    tenant_id: uuid.UUID = Field(description="The chain: a tenant, or 00000000-0000-0000-0000-000000000000 (platform)")
    seq: int
    recorded_at: dt.datetime
    actor: str
    action: str
    target: str | None
    outcome: str = Field(description="success, refused or failure")
    details: dict[str, Any]
    prev_hash: str = Field(description="SHA-256 of the previous entry (hex)")
    hash: str = Field(description="SHA-256 of this entry's canonical text (hex)")

    @classmethod
    def of(cls, row: Any) -> AuditEntryOut:
        return cls(
            tenant_id=row.tenant_id,
            seq=row.seq,
            recorded_at=row.recorded_at,
            actor=row.actor,
            action=row.action,
            target=row.target,
            outcome=row.outcome,
            details=row.details,
            prev_hash=bytes(row.prev_hash).hex(),
            hash=bytes(row.hash).hex(),
        )


def export_line(row: Any) -> dict[str, Any]:
    """One JSON Lines record: every hashed field exactly as hashed, so the file verifies offline."""
    return {
        "tenant_id": str(row.tenant_id),
        "seq": row.seq,
        "recorded_at": row.recorded_at_text,
        "actor": row.actor,
        "action": row.action,
        "target": row.target,
        "outcome": row.outcome,
        "details": row.details,
        "details_text": row.details_text,
        "prev_hash": bytes(row.prev_hash).hex(),
        "hash": bytes(row.hash).hex(),
    }


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next (older) page; null on the last")


class VerifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: uuid.UUID | None = Field(default=None, description="Verify one chain only; every chain when absent")
    against: list[dict[str, Any]] | None = Field(
        default=None,
        max_length=100_000,
        description="Signed heads (from GET /v1/audit/heads or the published files) or lines of an earlier "
        "export: every entry they name must still be in the database, unchanged",
    )


class SignedHeadsOut(BaseModel):
    algorithm: str = Field(description="Ed25519")
    key_id: str = Field(description="First 16 hex digits of the SHA-256 of the public key")
    public_key: str = Field(description="The Ed25519 public key (base64 of 32 bytes) that checks the signatures")
    signed_at: dt.datetime
    heads: list[dict[str, Any]] = Field(
        description="One signed head per chain: type, chain_id, seq, hash, head_updated_at, signed_at, "
        "algorithm, key_id, signature (base64url over the other members, canonical JSON)"
    )


class FindingOut(BaseModel):
    tenant_id: uuid.UUID
    seq: int | None
    kind: str = Field(
        description="missing, duplicate, altered, broken_link, no_head, beyond_head, head_mismatch, "
        "anchor_missing or anchor_mismatch"
    )
    detail: str

    @classmethod
    def of(cls, finding: Finding) -> FindingOut:
        return cls(tenant_id=finding.tenant_id, seq=finding.seq, kind=finding.kind, detail=finding.detail)


class VerdictOut(BaseModel):
    verdict: str = Field(description="intact, or tampered when any finding was made")
    chains: int
    entries: int
    findings: list[FindingOut]
    checked_at: dt.datetime

    @classmethod
    def of(cls, verdict: Verdict) -> VerdictOut:
        return cls(
            verdict="intact" if verdict.ok else "tampered",
            chains=verdict.chains,
            entries=verdict.entries,
            findings=[FindingOut.of(f) for f in verdict.findings],
            checked_at=verdict.checked_at,
        )
