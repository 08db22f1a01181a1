"""The one way a Socle service is assembled.

Each service's ``create_app()`` calls ``create_service_app`` with its settings and route
handlers; everything common — lifespan-owned engine and token verifier, authentication,
the request transaction, problem+json errors, JSON logs, correlation ids, metrics, health
and the OpenAPI document — is wired here, in small ``_configure_*`` steps.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import structlog
from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from litestar.types import ControllerRouterHandler, Scope
from sqlalchemy.ext.asyncio import AsyncEngine

from socle_core.access import (
    Authentication,
    UndeclaredAccess,
    declare_routes,
    declared_routes,
    enforce_access,
    provide_caller_tenant,
    public,
)
from socle_core.audit import record_refusal
from socle_core.auth import AuthenticationMiddleware, CrossTenantRefused, TokenVerifier, tenant_guard_middleware
from socle_core.credentials import CredentialVerifier
from socle_core.db import close_abandoned_sessions, create_engine, create_session_maker, provide_db_session
from socle_core.directory import TenantBindings
from socle_core.docs import LocalRedocPlugin, document_answers
from socle_core.errors import ConstraintMessage, exception_handlers
from socle_core.headers import security_headers
from socle_core.health import DEFAULT_CHECKS, ReadinessCheck, live, ready
from socle_core.inputs import request_input_middleware
from socle_core.logging import configure_logging
from socle_core.observability import correlation_middleware
from socle_core.settings import ServiceSettings

log = structlog.get_logger("socle.app")

Lifespan = Callable[[Litestar], Any]
#: Builds the verifier of a service's device and integration credentials from its engine.
CredentialVerifierFactory = Callable[[AsyncEngine], CredentialVerifier]
#: Where Litestar serves the API documentation (its routes are declared public here).
DOCS_PATH = "/schema"


class _Metrics(PrometheusController):
    path = "/metrics"
    include_in_schema = False
    opt = {"access": public("métriques du service, sans donnée de tenant")}


def create_service_app(
    settings: ServiceSettings,
    route_handlers: Sequence[ControllerRouterHandler],
    *,
    title: str,
    description: str,
    readiness_checks: dict[str, ReadinessCheck] | None = None,
    lifespan: Sequence[Lifespan] = (),
    dependencies: dict[str, Provide] | None = None,
    extra_state: dict[str, Any] | None = None,
    platform_client_id: str | None = None,
    credential_verifier: CredentialVerifierFactory | None = None,
    constraints: Mapping[str, ConstraintMessage] | None = None,
    **litestar_kwargs: Any,
) -> Litestar:
    """The service's app; refused (``UndeclaredAccess``) when a route does not declare its access rule.

    ``platform_client_id``: the client id of the platform's own service account, admitted by the
    routes that declare ``platform_client``; ``credential_verifier``: how the service's device and
    integration credentials are verified, required when a route declares them; ``constraints``:
    the service's words for its named database constraints (``socle_core.errors``).
    """
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    state = State(
        {
            "settings": settings,
            "readiness_checks": readiness_checks or dict(DEFAULT_CHECKS),
            "platform_client_id": platform_client_id,
            "constraints": dict(constraints or {}),
        }
    )
    state.update(extra_state or {})
    openapi = _openapi(settings, title, description)
    app = Litestar(
        route_handlers=[live, ready, _Metrics, *route_handlers],
        state=state,
        lifespan=[_infrastructure(settings, credential_verifier), *lifespan],
        dependencies={
            "db_session": Provide(provide_db_session),
            "caller_tenant": Provide(provide_caller_tenant, sync_to_thread=False),
            **(dependencies or {}),
        },
        guards=[enforce_access],
        middleware=[
            correlation_middleware,
            PrometheusConfig(app_name=f"socle_{settings.service_name}", group_path=True).middleware,
            AuthenticationMiddleware,
            request_input_middleware(),
            tenant_guard_middleware(),
        ],
        exception_handlers=exception_handlers,
        after_exception=[
            close_abandoned_sessions,
            audit_cross_tenant_attempt,
            *litestar_kwargs.pop("after_exception", []),
        ],
        before_send=[security_headers(openapi.path or DOCS_PATH), *litestar_kwargs.pop("before_send", [])],
        openapi_config=openapi,
        cors_config=CORSConfig(allow_origins=settings.cors_origins) if settings.cors_origins else None,
        logging_config=None,
        debug=False,
        **litestar_kwargs,
    )
    declare_routes(app, public_prefixes=(DOCS_PATH,))
    if credential_verifier is None and any(
        r.access.authentication is Authentication.CREDENTIAL for r in declared_routes(app)
    ):
        raise UndeclaredAccess("des routes déclarent des clés d'intégration, sans vérificateur (credential_verifier)")
    document_answers(app)
    return app


def _infrastructure(settings: ServiceSettings, credential_verifier: CredentialVerifierFactory | None) -> Lifespan:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        engine = create_engine(settings)
        verifier = TokenVerifier(
            settings.oidc_issuer,
            settings.oidc_audience,
            algorithms=settings.oidc_algorithms,
            leeway_seconds=settings.oidc_leeway_seconds,
            max_lifetime_seconds=settings.oidc_max_token_lifetime_seconds,
            jwks_cache_seconds=settings.oidc_jwks_cache_seconds,
            timeout_seconds=settings.oidc_http_timeout_seconds,
            bindings=TenantBindings(engine),
        )
        app.state.db_engine = engine
        app.state.db_session_maker = create_session_maker(engine)
        app.state.token_verifier = verifier
        app.state.credential_verifier = credential_verifier(engine) if credential_verifier else None
        try:
            yield
        finally:
            await verifier.aclose()
            await engine.dispose()

    return lifespan


def _openapi(settings: ServiceSettings, title: str, description: str) -> OpenAPIConfig:
    return OpenAPIConfig(
        title=title,
        version="0.1.0",
        description=description,
        path=DOCS_PATH,
        render_plugins=[LocalRedocPlugin()],
        components=Components(
            security_schemes={
                "bearer": SecurityScheme(
                    type="http",
                    scheme="bearer",
                    bearer_format="JWT",
                    description=f"Access token of the realm {settings.oidc_issuer}",
                )
            }
        ),
        security=[{"bearer": []}],
    )


async def audit_cross_tenant_attempt(exc: BaseException, scope: Scope) -> None:
    """``after_exception`` hook: a refused cross-tenant attempt goes to the caller's audit chain.

    Written in a transaction of its own (the request's is rolled back) before the 404 is
    sent, aggregated per caller and ``where`` (path, header, body field): a caller firing
    thousands of attempts gets one entry per window and a summary counting the rest. If the
    audit log cannot be written the refusal still stands and the failure is logged, since
    the attempt was refused either way.
    """
    if not isinstance(exc, CrossTenantRefused):
        return
    attempt = exc.attempt
    engine = getattr(scope["litestar_app"].state, "db_engine", None)
    if engine is None:
        return
    try:
        await record_refusal(
            engine,
            exc.tenant,
            actor=attempt.subject or attempt.client_id or "unknown",
            action="cross_tenant.refused",
            kind=attempt.where,
            target=attempt.named,
            details={"where": attempt.where, "path": attempt.path, "client_id": attempt.client_id},
        )
    except Exception:  # the 404 must go out whatever happens to the audit write
        log.exception("audit_write_failed", action="cross_tenant.refused", path=attempt.path)
