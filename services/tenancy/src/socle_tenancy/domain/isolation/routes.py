"""Every HTTP route of every service, classified by how it may touch tenant data.

The isolation report probes the ``tenant-resource`` routes through the running services,
and ``tests/isolation/test_cross_tenant_matrix.py`` introspects every service app and fails
on any route missing here: a new endpoint cannot ship without a cross-tenant check.

Scopes:

- ``tenant-resource``: names one tenant's resource in its path; another tenant's token gets 404.
- ``tenant-own``: acts only on the caller's own tenant (lists, creation, who-am-I).
- ``platform``: operator / auditor / EPCI-admin work; a commune's token is refused (403 or
  404) before any tenant data is read.
- ``public``: health, metrics, the OpenAPI document, the console's landing page.
- ``console-session``: console pages behind a browser session cookie, not a bearer token;
  they call the services with the agent's own token, so the services' checks apply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

Scope = Literal["tenant-resource", "tenant-own", "platform", "public", "console-session"]

#: Routes every service has (socle_core.app), matched by prefix.
PUBLIC_PREFIXES = ("/health/", "/metrics", "/schema")

_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


#: What a ``tenant-resource`` route names, so the report can give it a resource of the target tenant:
#: ``tenant`` (the tenant's own id), or a throw-away resource the report creates as that tenant and
#: removes at the end (``service-account``, ``grant``: a grant to a third tenant that shares no row,
#: ``member``: a disabled user without credentials, added to the tenant's organization).
Target = Literal["tenant", "service-account", "grant", "member"]


@dataclass(frozen=True)
class RouteRule:
    service: str
    method: str
    path: str  # Litestar's template, e.g. /v1/tenants/{ref:str}
    scope: Scope
    target: Target | None = None
    body: dict[str, Any] | None = field(default=None, hash=False)
    why: str = ""
    #: The query parameter that names the tenant's resource, when it is not in the path.
    query: str | None = None
    #: The GET route through which the resource's owner sees it (its identifying values); defaults to
    #: the route itself for a GET. None for a resource no route shows (a member).
    view: str | None = None

    def url(self, value: str) -> str:
        if self.query:
            return f"{self.path}?{self.query}={value}"
        return _PARAM.sub(value, self.path)

    def view_url(self, value: str) -> str | None:
        """The owner's view of the resource this route names, or None when there is none."""
        if self.view is not None:
            return _PARAM.sub(value, self.view)
        return self.url(value) if self.method == "GET" and self.target != "member" else None


def _tenant(method: str, path: str, why: str, body: dict[str, Any] | None = None) -> RouteRule:
    return RouteRule("tenancy", method, path, "tenant-resource", "tenant", body, why)


_ACCOUNT_VIEW = "/v1/service-accounts/{account_id:uuid}"
_GRANT_VIEW = "/v1/grants/{grant_id:uuid}"

ROUTES: tuple[RouteRule, ...] = (
    # tenancy
    RouteRule("tenancy", "POST", "/v1/epcis", "platform", why="register the deployment's EPCI"),
    RouteRule("tenancy", "GET", "/v1/epcis/{siren:str}/candidates", "platform", why="EPCI admin"),
    RouteRule("tenancy", "POST", "/v1/epcis/{siren:str}/onboarding", "platform", why="EPCI admin"),
    RouteRule("tenancy", "GET", "/v1/tenants", "platform", why="registry metadata, platform roles"),
    _tenant("GET", "/v1/tenants/{ref:str}", "a tenant reads only its own registry entry"),
    _tenant("GET", "/v1/tenants/{ref:str}/quotas", "a tenant reads only its own quotas"),
    RouteRule("tenancy", "PATCH", "/v1/tenants/{ref:str}", "platform", why="EPCI admin renames a tenant"),
    RouteRule("tenancy", "PATCH", "/v1/tenants/{ref:str}/quotas", "platform", why="EPCI admin sets quotas"),
    RouteRule("tenancy", "POST", "/v1/tenants/{ref:str}/onboarding", "platform", why="EPCI admin"),
    RouteRule("tenancy", "POST", "/v1/tenants/{ref:str}/suspend", "platform", why="EPCI admin"),
    RouteRule("tenancy", "POST", "/v1/tenants/{ref:str}/reactivate", "platform", why="EPCI admin"),
    RouteRule("tenancy", "POST", "/v1/isolation/reports", "platform", why="auditor and operator"),
    RouteRule("tenancy", "GET", "/v1/isolation/public-key", "platform", why="auditor and operator"),
    RouteRule("tenancy", "POST", "/v1/tenants/{ref:str}/offboarding", "platform", why="EPCI admin"),
    RouteRule("tenancy", "GET", "/v1/tenants/{ref:str}/offboarding/identity", "platform", why="EPCI admin"),
    RouteRule("tenancy", "POST", "/v1/tenants/{ref:str}/offboarding/completion", "platform", why="EPCI admin"),
    RouteRule("tenancy", "POST", "/v1/tenants/imports", "platform", why="EPCI admin: a commune back from its bundle"),
    RouteRule("tenancy", "POST", "/v1/tenants/{ref:str}/import/completion", "platform", why="EPCI admin"),
    RouteRule(
        "tenancy", "GET", "/v1/audit/entries", "tenant-resource", "tenant", why="another's chain", query="tenant"
    ),
    RouteRule("tenancy", "GET", "/v1/audit/export", "tenant-resource", "tenant", why="another's chain", query="tenant"),
    RouteRule("tenancy", "POST", "/v1/audit/verify", "platform", why="auditor and operator"),
    RouteRule("tenancy", "GET", "/v1/audit/heads", "platform", why="auditor and operator: every chain's signed head"),
    RouteRule("tenancy", "GET", "/v1/grants", "tenant-own", why="grants the caller's tenant gave or received"),
    RouteRule("tenancy", "POST", "/v1/grants", "tenant-own", why="the caller's tenant grants"),
    RouteRule("tenancy", "GET", "/v1/grants/{grant_id:uuid}", "tenant-resource", "grant", why="a grant between others"),
    RouteRule(
        "tenancy",
        "POST",
        "/v1/grants/{grant_id:uuid}/revoke",
        "tenant-resource",
        "grant",
        {"reason": "sonde du rapport d'isolation"},
        why="revoke another's grant",
        view=_GRANT_VIEW,
    ),
    # identity
    RouteRule("identity", "GET", "/v1/me", "tenant-own", why="the caller's own identity"),
    RouteRule("identity", "GET", "/v1/service-accounts", "tenant-own", why="the caller's commune's accounts"),
    RouteRule("identity", "POST", "/v1/service-accounts", "tenant-own", why="created in the caller's commune"),
    RouteRule(
        "identity", "GET", "/v1/service-accounts/{account_id:uuid}", "tenant-resource", "service-account", why="read"
    ),
    RouteRule(
        "identity",
        "POST",
        "/v1/service-accounts/{account_id:uuid}/rotate",
        "tenant-resource",
        "service-account",
        why="rotate another commune's secret",
        view=_ACCOUNT_VIEW,
    ),
    RouteRule(
        "identity",
        "DELETE",
        "/v1/service-accounts/{account_id:uuid}",
        "tenant-resource",
        "service-account",
        why="revoke another commune's account",
        view=_ACCOUNT_VIEW,
    ),
    RouteRule("identity", "GET", "/v1/members", "tenant-own", why="members of the caller's own organization"),
    RouteRule(
        "identity", "GET", "/v1/members/invitations", "tenant-own", why="invitations of the caller's own organization"
    ),
    RouteRule(
        "identity", "POST", "/v1/members/invitations", "tenant-own", why="invited into the caller's organization"
    ),
    # Members live in Keycloak: the report adds a throw-away user to the target's organization.
    RouteRule(
        "identity",
        "PUT",
        "/v1/members/{user_id:uuid}/role",
        "tenant-resource",
        "member",
        {"role": "commune-agent"},
        why="another's member",
    ),
    RouteRule("identity", "DELETE", "/v1/members/{user_id:uuid}", "tenant-resource", "member", why="another's member"),
    RouteRule("identity", "POST", "/v1/organizations/{alias:str}/suspension", "platform", why="operator or platform"),
    RouteRule("identity", "DELETE", "/v1/organizations/{alias:str}/suspension", "platform", why="operator or platform"),
    RouteRule("identity", "DELETE", "/v1/organizations/{alias:str}", "platform", why="operator or platform client"),
    RouteRule("identity", "POST", "/v1/placements/sync", "platform", why="operator or the platform client"),
    RouteRule("identity", "POST", "/v1/audit-feed/sync", "platform", why="operator or the platform client"),
    RouteRule("identity", "POST", "/v1/invitations/sync", "platform", why="operator or the platform client"),
    # billing
    RouteRule(
        "billing", "PUT", "/v1/metering-accounts/{tenant_id:uuid}", "platform", why="onboarding (platform client)"
    ),
    RouteRule(
        "billing",
        "GET",
        "/v1/metering-accounts/{tenant_id:uuid}",
        "tenant-resource",
        "tenant",
        why="a tenant reads only its own metering account",
    ),
    RouteRule("billing", "GET", "/v1/metering-accounts", "platform", why="every account: operator and auditor"),
    # console
    RouteRule("console", "GET", "/", "public", why="landing page, no data"),
    RouteRule("console", "GET", "/auth/login", "public", why="starts the login"),
    RouteRule("console", "GET", "/auth/callback", "public", why="OIDC callback"),
    RouteRule("console", "POST", "/auth/logout", "console-session", why="ends the caller's own session"),
    RouteRule("console", "POST", "/auth/backchannel-logout", "public", why="Keycloak's signed logout token"),
    RouteRule("console", "GET", "/account", "console-session", why="the agent's own account"),
    RouteRule("console", "GET", "/communes/{alias:str}", "console-session", why="404 for another alias"),
    RouteRule("console", "GET", "/choose-commune", "console-session", why="the agent's own communes"),
    RouteRule("console", "POST", "/choose-commune", "console-session", why="the agent's own communes"),
)


def rule_for(service: str, method: str, path: str) -> RouteRule | None:
    """The classification of a route, or None when nobody classified it yet."""
    if path.startswith(PUBLIC_PREFIXES):
        return RouteRule(service, method, path, "public", why="socle_core's health, metrics and schema")
    normalized = path.rstrip("/") or "/"
    for rule in ROUTES:
        if (rule.service, rule.method, rule.path) == (service, method, normalized):
            return rule
    return None
