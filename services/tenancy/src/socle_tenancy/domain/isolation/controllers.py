"""``POST /v1/isolation/reports``: an auditor or operator runs the isolation evidence report;
``GET /v1/isolation/public-key``: the public key that verifies it (no secret: the private key stays here)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import JSONBody
from litestar.status_codes import HTTP_201_CREATED

from socle_core import access
from socle_core.audit import record_detached
from socle_core.auth import Principal
from socle_core.docs import OTHER_MEDIA_TYPES
from socle_core.errors import ServiceUnavailable
from socle_tenancy.config import TenancySettings
from socle_tenancy.domain.access import AUDITORS
from socle_tenancy.domain.isolation import signing
from socle_tenancy.domain.isolation.html import render
from socle_tenancy.domain.isolation.schemas import ReportRequest
from socle_tenancy.domain.isolation.services import ReportConfig, run_report


class IsolationReportController(Controller):
    path = "/v1/isolation"
    tags = ["isolation"]

    @get("/public-key", access=access.platform(*AUDITORS, why="auditor and operator"))
    async def public_key(self, request: Request[Principal, Any, Any], state: State) -> dict[str, str]:
        """The Ed25519 public key (PEM) and key id that verify the reports this platform signs."""
        settings: TenancySettings = state.settings
        try:
            key = signing.check_key(settings.report_signing_key, settings.environment.value)
        except signing.SigningKeyError as exc:
            raise ServiceUnavailable(str(exc)) from exc
        return signing.published(key)

    @post(
        "/reports",
        status_code=HTTP_201_CREATED,
        opt={OTHER_MEDIA_TYPES: {HTTP_201_CREATED: ("text/html",)}},
        access=access.platform(*AUDITORS, why="auditor and operator"),
    )
    async def create_report(
        self, request: Request[Principal, Any, Any], state: State, data: JSONBody[ReportRequest | None] = None
    ) -> Response[Any]:
        """Run every check now and answer the signed report (JSON) or its printable page (HTML)."""
        options = data or ReportRequest()
        settings: TenancySettings = state.settings
        try:
            report = await run_report(ReportConfig.from_settings(settings, sample_size=options.sample))
        except signing.SigningKeyError as exc:
            raise ServiceUnavailable(str(exc)) from exc
        await record_detached(  # an auditor action, kept in the platform chain
            state.db_engine,
            None,
            actor=request.user.subject,
            action="auditor.isolation_report",
            target=str(report["report_id"]),
            outcome="success",
            details={"verdict": report["verdict"], "sample": options.sample, "format": options.format},
        )
        if options.format == "html":
            return Response(render(report), status_code=HTTP_201_CREATED, media_type="text/html")
        return Response(report, status_code=HTTP_201_CREATED)
