"""Who may call a route, declared on the route: enforced by one guard, read by the isolation catalogue.

Every route handler of a Socle service carries an ``Access`` in its ``opt`` (``@get(..., access=...)``,
Litestar keeps unknown keyword arguments in ``opt``). ``create_service_app`` refuses to build an
app with a route that has none, so a check cannot be forgotten, and the same object says:

- how the caller authenticates (``Authentication``): a Keycloak bearer token, a device or
  integration credential (``socle_core.credentials``), a console session cookie, or nothing;
  the authentication middleware and the tenant guard read it, not a list of paths;
- which roles may call it, and whether they act for their token's single tenant
  (``tenant_roles``) or platform-wide (``roles``), or as the platform's own client;
- how the route may touch tenant data (``scope``, ``target``...), which the isolation report
  and ``tests/isolation`` probe: the table of every route is ``declared_routes(app)``.

Checks that depend on the resource itself (an EPCI admin of another EPCI, an auditor naming
a chain) stay in the handlers' domain code; the role and tenant checks live here only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Literal

from litestar import Litestar, Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.routes import HTTPRoute

from socle_core.credentials import Integration
from socle_core.errors import Forbidden, Unauthenticated
from socle_core.roles import Role
from socle_core.tenant import TenantId

#: The key of a route handler's ``opt`` that holds its ``Access``.
ACCESS = "access"
#: Methods every route answers by itself (Litestar), not declared.
IMPLICIT_METHODS = frozenset({"HEAD", "OPTIONS"})
_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


class Authentication(StrEnum):
    BEARER = "bearer"  # a Keycloak access token (socle_core.auth)
    CREDENTIAL = "credential"  # a device or integration credential (socle_core.credentials)
    SESSION = "session"  # the console's browser session cookie, checked by the page itself
    NONE = "none"  # health, metrics, the API documentation, the login pages


#: How a route may touch tenant data:
#: ``tenant-resource`` names one tenant's resource (another tenant's token gets 404);
#: ``tenant-own`` acts only on the caller's own tenant; ``platform`` is operator / auditor / EPCI
#: admin work (a commune's token is refused before any tenant data is read); ``public`` has no
#: data; ``console-session`` is a console page that calls the services with the agent's token.
Scope = Literal["tenant-resource", "tenant-own", "platform", "public", "console-session"]

#: What a ``tenant-resource`` route names, so the isolation report can give it a resource of the
#: target tenant: the tenant's own id, or a throw-away resource the report creates as that tenant
#: (``service-account``, ``grant``: a grant to a third tenant that shares no row, ``member``: a
#: disabled user without credentials, added to the tenant's organization).
Target = Literal["tenant", "service-account", "grant", "member"]


class UndeclaredAccess(TypeError):
    """An app has routes without an ``Access``: it is not built."""


@dataclass(frozen=True)
class Access:
    """The access rule of one route: who authenticates how, which roles, and its isolation scope."""

    scope: Scope
    why: str
    #: Callers holding one of these act without a tenant of their token (operator, auditor, EPCI admin).
    roles: frozenset[Role] = frozenset()
    #: Callers holding one of these act for the single tenant their token names (403 without one).
    tenant_roles: frozenset[Role] = frozenset()
    #: The platform's own service account (``socle-platform``) may call it, whatever its roles.
    platform_client: bool = False
    authentication: Authentication = Authentication.BEARER
    #: A path parameter naming a tenant: a tenant-bound caller must name its own, else 404.
    tenant_path: str | None = None
    #: For the isolation report: what the route names, the body of a probe, the query parameter
    #: that names the resource, and the GET route through which the owner sees it.
    target: Target | None = None
    body: dict[str, Any] | None = field(default=None, hash=False, compare=False)
    query: str | None = None
    view: str | None = None

    def __post_init__(self) -> None:
        bearer = self.authentication is Authentication.BEARER
        if (self.roles or self.tenant_roles or self.platform_client) and not bearer:
            raise ValueError("roles apply only to bearer-token routes")
        if (self.scope == "tenant-resource") != (self.target is not None):
            raise ValueError("a tenant-resource route, and only one, says what it names (target)")

    def because(self, why: str) -> Access:
        """The same rule, for a route with its own reason."""
        return replace(self, why=why)

    @property
    def anyone_authenticated(self) -> bool:
        return not (self.roles or self.tenant_roles or self.platform_client)

    def allowed_roles(self) -> list[str]:
        return sorted(str(r) for r in self.roles | self.tenant_roles)

    def check(self, connection: ASGIConnection[Any, Any, Any, Any]) -> None:
        """Refuse (403, or 404 for another tenant named in the path) a caller this rule does not admit."""
        if self.authentication is not Authentication.BEARER:
            return  # the middleware authenticated it as declared; no role applies
        from socle_core.auth import Principal  # auth builds on this module

        principal = connection.scope.get("user")
        if not isinstance(principal, Principal):
            raise Unauthenticated("cette route demande un jeton d'accès")
        platform_client = connection.app.state.get("platform_client_id")
        if self.platform_client and principal.is_service_account and principal.client_id == platform_client:
            return
        if principal.has_any_role(*self.roles) or self.anyone_authenticated:
            return
        if self.tenant_path is not None:  # another tenant's resource does not exist, whatever the role
            principal.require_same_tenant(
                str(connection.path_params[self.tenant_path]), where="path", path=connection.url.path
            )
        if not principal.has_any_role(*self.tenant_roles):
            raise Forbidden(f"cette action demande l'un des rôles : {', '.join(self.allowed_roles())}")
        principal.require_tenant()

    def url(self, path: str, value: str) -> str:
        """The route's path naming ``value`` (in the query parameter, when the route names it there)."""
        if self.query:
            return f"{path}?{self.query}={value}"
        return _PARAM.sub(value, path)


def _roles(roles: Iterable[Role]) -> frozenset[Role]:
    return frozenset(roles)


def public(why: str) -> Access:
    """No authentication and no tenant data (health, documentation, login pages)."""
    return Access("public", why, authentication=Authentication.NONE)


def console_session(why: str) -> Access:
    """A console page behind the browser session cookie; it calls the services with the agent's token."""
    return Access("console-session", why, authentication=Authentication.SESSION)


def platform(*roles: Role, why: str, platform_client: bool = False) -> Access:
    """Platform-wide work for these roles; a commune's token is refused before any data is read."""
    return Access("platform", why, roles=_roles(roles), platform_client=platform_client)


def tenant_own(*tenant_roles: Role, why: str) -> Access:
    """Work on the caller's own tenant only (no role: any authenticated caller, e.g. who-am-I)."""
    return Access("tenant-own", why, tenant_roles=_roles(tenant_roles))


def tenant_resource(
    *tenant_roles: Role,
    target: Target,
    why: str,
    roles: Iterable[Role] = (),
    platform_client: bool = False,
    tenant_path: str | None = None,
    body: dict[str, Any] | None = None,
    query: str | None = None,
    view: str | None = None,
) -> Access:
    """One tenant's resource named by the request: another tenant's caller gets 404."""
    return Access(
        "tenant-resource",
        why,
        roles=_roles(roles),
        tenant_roles=_roles(tenant_roles),
        platform_client=platform_client,
        tenant_path=tenant_path,
        target=target,
        body=body,
        query=query,
        view=view,
    )


def credential(why: str, *, scope: Scope = "tenant-own") -> Access:
    """A device or integration sends data for the tenant its credential belongs to (no bearer token)."""
    return Access(scope, why, authentication=Authentication.CREDENTIAL)


def access_of(handler: BaseRouteHandler) -> Access | None:
    found = handler.opt.get(ACCESS)
    return found if isinstance(found, Access) else None


def enforce_access(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """The app-wide guard: the route's declared rule, or nothing passes."""
    declared = access_of(handler)
    if declared is None:
        raise Forbidden("cette route ne déclare pas qui peut l'appeler")
    declared.check(connection)


def authentication_of(scope: Any) -> Authentication:
    """How the route of this ASGI scope authenticates (bearer when it declares nothing)."""
    handler = scope.get("route_handler")
    declared = access_of(handler) if handler is not None else None
    return declared.authentication if declared is not None else Authentication.BEARER


@dataclass(frozen=True)
class DeclaredRoute:
    """A row of an app's route table: method, Litestar path template and the route's rule."""

    method: str
    path: str
    access: Access


def declared_routes(app: Litestar) -> Iterator[DeclaredRoute]:
    """Every method and path of the app with its access rule (``UndeclaredAccess`` on a route without)."""
    missing = []
    rows = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            declared = access_of(handler)
            for method in sorted(handler.http_methods - IMPLICIT_METHODS):
                if declared is None:
                    missing.append(f"{method} {route.path}")
                else:
                    rows.append(DeclaredRoute(method, route.path.rstrip("/") or "/", declared))
    if missing:
        raise UndeclaredAccess(
            "ces routes ne déclarent pas leur règle d'accès (access=… de socle_core.access) : " + ", ".join(missing)
        )
    yield from rows


def declare_routes(app: Litestar, *, public_prefixes: tuple[str, ...]) -> None:
    """Give Litestar's own routes (documentation, OPTIONS) their rule, then refuse an app with an undeclared route."""
    docs = public("la documentation de l'API, sans donnée")
    preflight = public("la réponse de Litestar à OPTIONS (CORS), sans donnée")
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if route.path.startswith(public_prefixes):
                handler.opt.setdefault(ACCESS, docs)
            elif handler.http_methods <= IMPLICIT_METHODS:
                handler.opt.setdefault(ACCESS, preflight)
    list(declared_routes(app))


def provide_caller_tenant(request: Request[Any, Any, Any]) -> TenantId:
    """The tenant the caller acts for: its token's single tenant (403 without one), or its credential's."""
    from socle_core.auth import Principal

    user = request.scope.get("user")
    if isinstance(user, Principal):
        return user.require_tenant()
    if isinstance(user, Integration):
        return user.tenant
    raise Unauthenticated("cette route demande un appelant authentifié")
