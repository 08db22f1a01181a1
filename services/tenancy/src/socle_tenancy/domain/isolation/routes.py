"""Every HTTP route of every service, classified by how it may touch tenant data.

Each service declares its routes' rules itself, on the routes (``socle_core.access``), and
lists its route handlers under the entry point group ``socle.routes`` of its package
(``<service> = "socle_<service>.app:ROUTE_HANDLERS"``): this module only reads them, so a new
service's endpoints are covered without editing tenancy. The isolation report probes the
``tenant-resource`` routes through the running services, and ``tests/isolation`` introspects
every service app: a route without a declared rule does not even build.

Scopes (``socle_core.access.Scope``): ``tenant-resource``, ``tenant-own``, ``platform``,
``public``, ``console-session``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from litestar import Router

from socle_core.access import Access, Scope, Target, access_of

__all__ = ["PUBLIC_PREFIXES", "RouteRule", "Scope", "Target", "routes", "rule_for"]

#: Routes every service has (socle_core.app), matched by prefix.
PUBLIC_PREFIXES = ("/health/", "/metrics", "/schema")
#: The entry point group under which each service lists its route handlers.
ENTRY_POINTS = "socle.routes"

_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")
_IMPLICIT = frozenset({"HEAD", "OPTIONS"})


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

    @classmethod
    def of(cls, service: str, method: str, path: str, access: Access) -> RouteRule:
        return cls(
            service, method, path, access.scope, access.target, access.body, access.why, access.query, access.view
        )

    def url(self, value: str) -> str:
        if self.query:
            return f"{self.path}?{self.query}={value}"
        return _PARAM.sub(value, self.path)

    def view_url(self, value: str) -> str | None:
        """The owner's view of the resource this route names, or None when there is none."""
        if self.view is not None:
            return _PARAM.sub(value, self.view)
        return self.url(value) if self.method == "GET" and self.target != "member" else None


def rules_of(service: str, handlers: Iterable[Any]) -> list[RouteRule]:
    """The rules a service's route handlers declare (a handler without one is a ``TypeError``)."""
    rules = []
    for route in Router(path="/", route_handlers=list(handlers)).routes:
        for handler in getattr(route, "route_handlers", []):
            methods = sorted(set(handler.http_methods) - _IMPLICIT)
            declared = access_of(handler)
            if methods and declared is None:
                raise TypeError(f"{service} {methods} {route.path}: no declared access (socle_core.access)")
            rules.extend(RouteRule.of(service, m, route.path.rstrip("/") or "/", declared) for m in methods if declared)
    return rules


@cache
def routes() -> tuple[RouteRule, ...]:
    """Every installed service's declared routes, by service name then declaration order."""
    found: list[RouteRule] = []
    for point in sorted(entry_points(group=ENTRY_POINTS), key=lambda p: p.name):
        found.extend(rules_of(point.name, point.load()))
    return tuple(found)


def rule_for(service: str, method: str, path: str) -> RouteRule | None:
    """The classification of a route, or None when nobody classified it yet."""
    if path.startswith(PUBLIC_PREFIXES):
        return RouteRule(service, method, path, "public", why="socle_core's health, metrics and schema")
    normalized = path.rstrip("/") or "/"
    for rule in routes():
        if (rule.service, rule.method, rule.path) == (service, method, normalized):
            return rule
    return None
