"""Live probes through the running services' APIs, with real tokens of the sampled tenants.

For each sampled tenant the report creates a throw-away Keycloak client whose tokens name
that tenant (the ``organization`` claim, as a commune's own service accounts carry) with the
``commune-admin`` role, and deletes it at the end. With tenant A's token it then calls every
``tenant-resource`` route on tenant B's resource: the answer must be a 404 problem+json that
contains nothing of B's own view of that resource. Each service's OpenAPI document is also
read, and a route absent from ``routes.ROUTES`` is reported: nobody checked it yet.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg
import httpx
from pydantic import SecretStr

from socle_tenancy.domain.isolation.probes import ProbeTenant
from socle_tenancy.domain.isolation.routes import PUBLIC_PREFIXES, ROUTES, RouteRule

PROBE_ROLE = "commune-admin"
_TYPED = re.compile(r"\{(\w+):\w+\}")


class ProbeIdentities:
    """Throw-away Keycloak clients bound to one tenant each, through the platform service account."""

    def __init__(self, issuer: str, client_id: str, secret: SecretStr, http: httpx.AsyncClient) -> None:
        base, _, realm = issuer.rstrip("/").rpartition("/realms/")
        self.admin = f"{base}/admin/realms/{realm}"
        self.token_url = f"{issuer.rstrip('/')}/protocol/openid-connect/token"
        self.client_id, self.secret, self.http = client_id, secret, http
        self.created: list[str] = []
        self._admin_token: str | None = None

    async def _token(self, client_id: str, secret: str) -> str:
        response = await self.http.post(
            self.token_url, data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    async def _admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if self._admin_token is None:
            self._admin_token = await self._token(self.client_id, self.secret.get_secret_value())
        response = await self.http.request(
            method, f"{self.admin}{path}", headers={"Authorization": f"Bearer {self._admin_token}"}, **kwargs
        )
        response.raise_for_status()
        return response

    async def token_for(self, tenant: ProbeTenant) -> str:
        client_id, secret = f"isolation-probe-{uuid.uuid4().hex[:12]}", uuid.uuid4().hex
        claim = json.dumps({tenant.key: {"tenant_id": [str(tenant.id)]}})
        created = await self._admin(
            "POST",
            "/clients",
            json={
                "clientId": client_id,
                "description": "isolation evidence report probe; deleted when the report ends",
                "enabled": True,
                "publicClient": False,
                "secret": secret,
                "serviceAccountsEnabled": True,
                "standardFlowEnabled": False,
                "directAccessGrantsEnabled": False,
                "protocolMappers": [
                    {
                        "name": "audience",
                        "protocol": "openid-connect",
                        "protocolMapper": "oidc-audience-mapper",
                        "config": {"included.client.audience": "socle-api", "access.token.claim": "true"},
                    },
                    {
                        "name": "organization",
                        "protocol": "openid-connect",
                        "protocolMapper": "oidc-hardcoded-claim-mapper",
                        "config": {
                            "claim.name": "organization",
                            "jsonType.label": "JSON",
                            "claim.value": claim,
                            "access.token.claim": "true",
                        },
                    },
                ],
            },
        )
        internal = created.headers["Location"].rsplit("/", 1)[-1]
        self.created.append(internal)
        user = (await self._admin("GET", f"/clients/{internal}/service-account-user")).json()
        role = (await self._admin("GET", f"/roles/{PROBE_ROLE}")).json()
        await self._admin("POST", f"/users/{user['id']}/role-mappings/realm", json=[role])
        return await self._token(client_id, secret)

    async def cleanup(self) -> int:
        removed = 0
        for internal in self.created:
            try:
                await self._admin("DELETE", f"/clients/{internal}")
                removed += 1
            except httpx.HTTPError:
                continue
        return removed


def _plain(path: str) -> str:
    return _TYPED.sub(r"{\1}", path).rstrip("/") or "/"


async def unclassified_routes(http: httpx.AsyncClient, service: str, base_url: str) -> list[str]:
    """Routes of a running service's OpenAPI document that ``routes.ROUTES`` does not classify."""
    response = await http.get(f"{base_url.rstrip('/')}/schema/openapi.json")
    response.raise_for_status()
    known = {(r.method, _plain(r.path)) for r in ROUTES if r.service == service}
    missing = []
    for path, operations in response.json().get("paths", {}).items():
        for method in operations:
            verb = method.upper()
            routed = verb in {"GET", "POST", "PUT", "PATCH", "DELETE"} and not path.startswith(PUBLIC_PREFIXES)
            if routed and (verb, _plain(path)) not in known:
                missing.append(f"{verb} {path}")
    return sorted(missing)


async def _resource(
    rule: RouteRule, target: ProbeTenant, actor: ProbeTenant, database_urls: Mapping[str, str]
) -> str | None:
    if rule.target == "tenant":
        return str(target.id)
    dsn = database_urls.get(rule.service)
    if rule.target is None or dsn is None:
        return None
    connection = await asyncpg.connect(dsn)
    try:
        async with connection.transaction():
            await connection.execute("SELECT set_config('app.tenant_id', $1, true)", str(target.id))
            args = (actor.id,) if "$1" in rule.target else ()
            return await connection.fetchval(rule.target, *args)  # type: ignore[no-any-return]
    finally:
        await connection.close()


def _strings(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value} if len(value) >= 4 else set()
    if isinstance(value, dict):
        return set().union(*(_strings(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_strings(v) for v in value)) if value else set()
    return set()


def _owner_values(response: httpx.Response, url: str) -> set[str]:
    """The values of the target's own view of its resource (JSON, or JSON Lines for exports)."""
    if response.status_code != 200:
        return set()
    try:
        values = _strings(response.json())
    except ValueError:
        values = set()
        for line in response.text.splitlines():
            try:
                values |= _strings(json.loads(line))
            except ValueError:
                continue
    return {v for v in values if v not in url}


async def probe_apis(
    *,
    service_urls: Mapping[str, str],
    database_urls: Mapping[str, str],
    tenants: list[ProbeTenant],
    issuer: str | None,
    client_id: str,
    secret: SecretStr | None,
    http_timeout_seconds: float = 20.0,
) -> dict[str, Any]:
    """Every cross-tenant call of every ``tenant-resource`` route of the services given."""
    if not service_urls:
        return {"status": "not run", "reason": "no service base URL configured", "probes": [], "unclassified": {}}
    if issuer is None or secret is None:
        return {
            "status": "not run",
            "reason": "probe tokens need the OIDC issuer and the platform client secret (SOCLE_TENANCY_KEYCLOAK_*)",
            "probes": [],
            "unclassified": {},
        }
    async with httpx.AsyncClient(timeout=http_timeout_seconds) as http:
        unclassified = {s: await unclassified_routes(http, s, url) for s, url in sorted(service_urls.items())}
        identities = ProbeIdentities(issuer, client_id, secret, http)
        try:
            tokens = {t.id: await identities.token_for(t) for t in tenants}
            probes = []
            for rule in (r for r in ROUTES if r.scope == "tenant-resource" and r.service in service_urls):
                probes.extend(await _probe_rule(http, rule, service_urls[rule.service], database_urls, tenants, tokens))
        finally:
            removed = await identities.cleanup()
    return {
        "status": "ran",
        "role": PROBE_ROLE,
        "probe_clients_removed": removed,
        "probes": probes,
        "unclassified": unclassified,
    }


async def _probe_rule(
    http: httpx.AsyncClient,
    rule: RouteRule,
    base_url: str,
    database_urls: Mapping[str, str],
    tenants: list[ProbeTenant],
    tokens: Mapping[uuid.UUID, str],
) -> list[dict[str, Any]]:
    results = []
    for target in tenants:
        for actor in (t for t in tenants if t.id != target.id):
            resource = await _resource(rule, target, actor, database_urls)
            entry = {
                "service": rule.service,
                "method": rule.method,
                "path": rule.path,
                "actor": str(actor.id),
                "target": str(target.id),
            }
            if resource is None:
                results.append({**entry, "outcome": "skipped", "reason": "the target tenant has no such resource"})
                continue
            url = f"{base_url.rstrip('/')}{rule.url(resource)}"
            own = await http.get(url, headers={"Authorization": f"Bearer {tokens[target.id]}"})
            values = _owner_values(own, url)
            response = await http.request(
                rule.method, url, headers={"Authorization": f"Bearer {tokens[actor.id]}"}, json=rule.body
            )
            leaked = sorted(v for v in values if v in response.text)
            problem = response.headers.get("content-type", "").startswith("application/problem+json")
            violations = []
            if response.status_code != 404:
                violations.append(f"expected 404, got {response.status_code}")
            if not problem:
                violations.append("the answer is not problem+json")
            if leaked:
                violations.append(f"the answer contains {len(leaked)} value(s) of the target's resource")
            results.append(
                {
                    **entry,
                    "status": response.status_code,
                    "problem_json": problem,
                    "owner_view_status": own.status_code,
                    "leaked": leaked,
                    "outcome": "violation" if violations else "refused",
                    "violations": violations,
                }
            )
    return results
