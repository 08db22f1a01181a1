"""Request body of the report endpoint (the report itself is a documented JSON document, see
docs/operations/isolation-report.md, kept as a plain dict so its signature covers exactly what is sent)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ReportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sample: int = Field(default=4, ge=2, le=20, description="How many tenants of the registry to probe, pairwise")
    format: Literal["json", "html"] = Field(default="json", description="The signed JSON report, or its HTML page")
