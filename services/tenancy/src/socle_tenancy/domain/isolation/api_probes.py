"""Live probes through the running services' APIs, with real tokens of the sampled tenants.

For each sampled tenant the report creates a throw-away Keycloak client whose tokens name
that tenant (the ``organization`` claim, as a commune's own service accounts carry) with the
``commune-admin`` role, and the throw-away resources the routes need (a service account, a
grant to a third tenant that shares no row, a disabled member without credentials); all are
removed at the end. Then, for every ordered pair (A, B):

- every ``tenant-resource`` route, called with A's token on B's resource, must answer what
  it answers for a resource that does not exist: a 404 problem+json of the same type, with
  none of B's identifying values;
- every ``tenant-own`` GET route (A's own lists) must carry none of B's identifying values.

Identifying values are what names B's rows in B's own view of them: ids, keys, names,
e-mails, client ids, hashes. A value that A's own views carry too (the EPCI's id, a platform
client such as ``account``), that the refusal of a missing resource carries, or that the
request itself holds names nobody and is not compared. Each leak is reported with the value,
where B's view holds it and where the answer holds it. A route that could not be probed is a
gap of the report, with its reason. Each service's OpenAPI document is read as well: a route
absent from the services' declared routes (``routes.routes()``) is a violation, nobody checked it yet.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import SecretStr

from socle_core.keycloak_admin import ClientCredentialsToken, KeycloakError
from socle_tenancy.domain.isolation.probes import ProbeTenant, finding
from socle_tenancy.domain.isolation.routes import PUBLIC_PREFIXES, RouteRule, routes

PROBE_ROLE = "commune-admin"
#: Names of everything the report creates, so an operator recognises what a crashed run left.
PROBE_PREFIX = "sonde-isolation"
#: How long a probe grant lives if the report dies before revoking it (it shares no row anyway).
GRANT_LIFETIME = dt.timedelta(minutes=15)
_TYPED = re.compile(r"\{(\w+):\w+\}")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_DIGEST = re.compile(r"(?=[^0-9]*[0-9])[A-Za-z0-9+/_-]{32,}={0,2}")
#: How much of an owner's view is read (an audit export holds the whole chain).
VIEW_LIMIT_BYTES = 2 << 20
#: Members whose value names a row or a person, whatever it looks like.
IDENTIFYING_KEYS = frozenset(
    {
        "actor",
        "alias",
        "client_id",
        "client_secret",
        "created_by",
        "email",
        "first_admin_email",
        "first_name",
        "firstName",
        "hash",
        "key",
        "last_name",
        "lastName",
        "name",
        "prev_hash",
        "reason",
        "revoked_by",
        "siren",
        "insee_code",
        "target",
        "username",
    }
)
MIN_LENGTH = 4
_WORD = "A-Za-z0-9_-"


class Unavailable(Exception):
    """No resource of the target for this route: why, in a sentence of the report."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _problem_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("detail") or body.get("title") or body)[:200] if isinstance(body, dict) else str(body)[:200]


def _expect(response: httpx.Response, what: str, *statuses: int) -> httpx.Response:
    if response.status_code not in statuses:
        raise Unavailable(f"{what} : HTTP {response.status_code} ({_problem_text(response)})")
    return response


class ProbeIdentities:
    """Throw-away Keycloak clients bound to one tenant each, through the platform service account."""

    def __init__(self, issuer: str, client_id: str, secret: SecretStr, http: httpx.AsyncClient) -> None:
        base, _, realm = issuer.rstrip("/").rpartition("/realms/")
        self.admin_base = f"{base}/admin/realms/{realm}"
        self.issuer, self.http = issuer, http
        self.created: list[str] = []
        self._platform = ClientCredentialsToken(issuer, client_id, secret.get_secret_value(), http=http)

    async def _token(self, client_id: str, secret: str) -> str:
        return await ClientCredentialsToken(self.issuer, client_id, secret, http=self.http).get()

    async def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A call of Keycloak's admin API as the platform client (the answer is the caller's to check)."""
        token = await self._platform.get()
        return await self.http.request(
            method, f"{self.admin_base}{path}", headers={"Authorization": f"Bearer {token}"}, **kwargs
        )

    async def _checked(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = await self.admin(method, path, **kwargs)
        response.raise_for_status()
        return response

    async def token_for(self, tenant: ProbeTenant) -> str:
        client_id, secret = f"isolation-probe-{uuid.uuid4().hex[:12]}", uuid.uuid4().hex
        claim = json.dumps({tenant.key: {"tenant_id": [str(tenant.id)]}})
        created = await self._checked(
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
        user = (await self._checked("GET", f"/clients/{internal}/service-account-user")).json()
        role = (await self._checked("GET", f"/roles/{PROBE_ROLE}")).json()
        await self._checked("POST", f"/users/{user['id']}/role-mappings/realm", json=[role])
        return await self._token(client_id, secret)

    async def cleanup(self) -> int:
        removed = 0
        for internal in self.created:
            try:
                response = await self.admin("DELETE", f"/clients/{internal}")
            except (httpx.HTTPError, KeycloakError):
                continue
            removed += response.is_success
        return removed


@dataclass
class Resource:
    """A resource of the target tenant that a route names, and its owner's view of it."""

    value: str
    origin: str  # "registre" or "créée par le rapport"
    view: Any = None


@dataclass
class ProbeResources:
    """The resources the routes name, per tenant: the tenant itself, or throw-away ones made as that tenant."""

    http: httpx.AsyncClient
    identities: ProbeIdentities
    service_urls: Mapping[str, str]
    tenants: list[ProbeTenant]
    tokens: Mapping[uuid.UUID, str]
    _made: dict[tuple[str, uuid.UUID, uuid.UUID | None], Resource | Unavailable] = field(default_factory=dict)
    _undo: list[tuple[str, Callable[[], Awaitable[httpx.Response]]]] = field(default_factory=list)

    def _auth(self, tenant: ProbeTenant) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[tenant.id]}"}

    def _service(self, service: str) -> str:
        if service not in self.service_urls:
            raise Unavailable(f"le service {service} n'est pas fourni au rapport (--service-url {service}=…)")
        return self.service_urls[service].rstrip("/")

    async def get(self, kind: str, target: ProbeTenant, actor: ProbeTenant) -> Resource:
        """The target's resource for a probe by ``actor`` (raises Unavailable with the reason)."""
        if kind == "tenant":
            return Resource(str(target.id), "registre")
        if kind == "grant":  # a grant A receives would rightly be visible to A: another grantee
            grantee = next((t for t in self.tenants if t.id not in (target.id, actor.id)), None)
            if grantee is None:
                raise Unavailable(
                    "une autorisation de partage que la collectivité sondeuse ne reçoit pas demande une troisième "
                    "collectivité dans l'échantillon (--sample 3 ou plus)"
                )
            key: tuple[str, uuid.UUID, uuid.UUID | None] = (kind, target.id, grantee.id)
        else:
            grantee, key = None, (kind, target.id, None)
        if key not in self._made:
            try:
                self._made[key] = await self._create(kind, target, grantee)
            except Unavailable as exc:
                self._made[key] = exc
            except (httpx.HTTPError, KeycloakError) as exc:
                self._made[key] = Unavailable(f"création impossible de la ressource de sonde : {exc!r}")
        made = self._made[key]
        if isinstance(made, Unavailable):
            raise made
        return made

    async def _create(self, kind: str, target: ProbeTenant, grantee: ProbeTenant | None) -> Resource:
        name = f"{PROBE_PREFIX}-{uuid.uuid4().hex[:10]}"
        if kind == "service-account":
            base = self._service("identity")
            created = _expect(
                await self.http.post(
                    f"{base}/v1/service-accounts", json={"name": name, "access": "read"}, headers=self._auth(target)
                ),
                f"création d'un compte de service de sonde pour {target.key}",
                201,
            ).json()
            url = f"{base}/v1/service-accounts/{created['id']}"
            self._undo.append(
                (
                    f"compte de service {created['id']} de {target.key}",
                    lambda: self.http.delete(url, headers=self._auth(target)),
                )
            )
            return Resource(str(created["id"]), "créée par le rapport", created)
        if kind == "grant":
            assert grantee is not None
            base = self._service("tenancy")
            body = {
                "grantee": str(grantee.id),
                "dataset": "devices",
                "resource_id": str(uuid.uuid4()),  # no such device: the grant shares no row
                "reason": f"{name} : autorisation de sonde du rapport d'isolation, ne partage aucune ligne",
                "expires_at": (dt.datetime.now(dt.UTC) + GRANT_LIFETIME).isoformat(),
            }
            created = _expect(
                await self.http.post(f"{base}/v1/grants", json=body, headers=self._auth(target)),
                f"création d'une autorisation de partage de sonde de {target.key} vers {grantee.key}",
                201,
            ).json()
            url = f"{base}/v1/grants/{created['id']}/revoke"
            self._undo.append(
                (
                    f"autorisation de partage {created['id']} de {target.key}",
                    lambda: self.http.post(
                        url, json={"reason": "fin du rapport d'isolation"}, headers=self._auth(target)
                    ),
                )
            )
            return Resource(str(created["id"]), "créée par le rapport", created)
        if kind == "member":
            return await self._member(target, name)
        raise Unavailable(f"aucune façon connue de créer une ressource {kind!r}")

    async def _member(self, target: ProbeTenant, name: str) -> Resource:
        """A disabled user without credentials, member of the target's organization (Keycloak admin API)."""
        found = _expect(
            await self.identities.admin(
                "GET", "/organizations", params={"q": f"tenant_id:{target.id}", "briefRepresentation": "false"}
            ),
            f"recherche de l'organisation Keycloak {target.key}",
            200,
        ).json()
        organization = next((o for o in found if o.get("alias") == target.key), None)
        if organization is None:
            raise Unavailable(f"{target.key} n'a pas d'organisation Keycloak : aucun membre à sonder")
        user = {
            "username": name,
            "email": f"{name}@sonde-isolation.invalid",
            "firstName": "Sonde",
            "lastName": "Isolation",
            "enabled": False,
        }
        created = _expect(
            await self.identities.admin("POST", "/users", json=user), "création d'un utilisateur de sonde", 201
        )
        user_id = created.headers["Location"].rsplit("/", 1)[-1]
        self._undo.append(
            (f"utilisateur de sonde {user_id}", lambda: self.identities.admin("DELETE", f"/users/{user_id}"))
        )
        _expect(
            await self.identities.admin("POST", f"/organizations/{organization['id']}/members", json=user_id),
            f"ajout de l'utilisateur de sonde à l'organisation {target.key}",
            201,
            204,
        )
        return Resource(user_id, "créée par le rapport", {"id": user_id, **user})

    async def cleanup(self) -> dict[str, Any]:
        """Remove everything made, newest first; what could not be removed is said, for an operator."""
        removed, left = 0, []
        for what, undo in reversed(self._undo):
            try:
                response = await undo()
            except (httpx.HTTPError, KeycloakError) as exc:
                left.append(f"{what} : {exc!r}")
                continue
            if response.is_success or response.status_code == 404:
                removed += 1
            else:
                left.append(f"{what} : HTTP {response.status_code} ({_problem_text(response)})")
        return {"removed": removed, "not_removed": left}


def _plain(path: str) -> str:
    return _TYPED.sub(r"{\1}", path).rstrip("/") or "/"


async def unclassified_routes(http: httpx.AsyncClient, service: str, base_url: str) -> list[str]:
    """Routes of a running service's OpenAPI document that its declared routes do not classify."""
    response = await http.get(f"{base_url.rstrip('/')}/schema/openapi.json")
    response.raise_for_status()
    known = {(r.method, _plain(r.path)) for r in routes() if r.service == service}
    missing = []
    for path, operations in response.json().get("paths", {}).items():
        for method in operations:
            verb = method.upper()
            routed = verb in {"GET", "POST", "PUT", "PATCH", "DELETE"} and not path.startswith(PUBLIC_PREFIXES)
            if routed and (verb, _plain(path)) not in known:
                missing.append(f"{verb} {path}")
    return sorted(missing)


def parsed(response: httpx.Response) -> Any:
    """The answer as JSON, JSON Lines (a list), or its text."""
    return _parsed_text(response.text)


def _parsed_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        lines = []
        for line in text.splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                return text
        return lines


async def _read_view(http: httpx.AsyncClient, url: str, headers: dict[str, str]) -> tuple[int, Any]:
    """The owner's view, its first VIEW_LIMIT_BYTES only (whole lines of a JSON Lines export)."""
    async with http.stream("GET", url, headers=headers) as response:
        chunks, size = [], 0
        async for chunk in response.aiter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size >= VIEW_LIMIT_BYTES:
                break
        if not response.is_success:
            return response.status_code, None
    text = b"".join(chunks).decode("utf-8", errors="replace")
    if size >= VIEW_LIMIT_BYTES:
        text = text.rsplit("\n", 1)[0]
    return response.status_code, _parsed_text(text)


def strings(document: Any, path: str = "") -> Iterator[tuple[str, str, str]]:
    """(path, member name, value) of every string (and integer, as text) of a JSON document."""
    if isinstance(document, dict):
        for key, value in document.items():
            yield from _member(value, f"{path}.{key}" if path else str(key), str(key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from _member(value, f"{path}[{index}]", "")
    elif isinstance(document, str | int) and not isinstance(document, bool):
        yield path, "", str(document)


def _member(value: Any, path: str, key: str) -> Iterator[tuple[str, str, str]]:
    if isinstance(value, dict | list):
        yield from strings(value, path)
    elif isinstance(value, str | int) and not isinstance(value, bool):
        yield path, key, str(value)


def _strong(value: str) -> bool:
    """A value that names one thing whatever member holds it: an id, an e-mail, a digest."""
    return bool(_UUID.fullmatch(value) or _EMAIL.fullmatch(value) or _DIGEST.fullmatch(value))


def identifying_values(document: Any) -> dict[str, str]:
    """Value → where the owner's view holds it, for the values that identify the owner's rows."""
    found: dict[str, str] = {}
    for path, key, value in strings(document):
        value = value.strip()
        if len(value) < MIN_LENGTH:
            continue
        if _strong(value) or key in IDENTIFYING_KEYS or key.endswith("_id"):
            found.setdefault(value, path or "(document)")
    return found


def all_values(document: Any) -> set[str]:
    return {value.strip() for _, _, value in strings(document)}


def _occurs(value: str, text: str) -> int:
    """Where the value occurs in the text (-1: nowhere); a word must stand alone, an id may be part of a string."""
    if _strong(value):
        return text.find(value)
    match = re.search(f"(?<![{_WORD}]){re.escape(value)}(?![{_WORD}])", text)
    return match.start() if match else -1


def _where(answer: Any, text: str, value: str, at: int) -> str:
    for path, _, held in strings(answer):
        if _occurs(value, held) >= 0:
            return f"membre {path or '(document)'} de la réponse"
    start = max(at - 40, 0)
    return f"corps de la réponse, position {at} : …{text[start : at + len(value) + 40]}…"


def find_leaks(
    response: httpx.Response, candidates: Mapping[str, str], *, common: set[str], baseline: str = ""
) -> list[dict[str, str]]:
    """The target's identifying values in an answer: each with where the owner's view and the answer hold it."""
    text, asked = response.text, str(response.request.url)
    answer = parsed(response)
    leaks = []
    for value, owner_path in sorted(candidates.items()):
        if value in common or value in asked or (baseline and _occurs(value, baseline) >= 0):
            continue
        at = _occurs(value, text)
        if at >= 0:
            leaks.append(
                {
                    "value": value,
                    "owner_view": f"membre {owner_path} de la vue du propriétaire",
                    "found_in": _where(answer, text, value, at),
                }
            )
    return leaks


def _who(tenant: ProbeTenant) -> dict[str, str]:
    return {"id": str(tenant.id), "key": tenant.key}


@dataclass
class _Run:
    http: httpx.AsyncClient
    service_urls: Mapping[str, str]
    tenants: list[ProbeTenant]
    tokens: Mapping[uuid.UUID, str]
    resources: ProbeResources
    views: dict[str, tuple[int, Any]] = field(default_factory=dict)
    #: Every value of each tenant's views: what that tenant may legitimately be shown.
    values: dict[uuid.UUID, set[str]] = field(default_factory=dict)
    #: What identifies each tenant's resources named in a path (not its audit chain, which rightly
    #: names people and grants other tenants know too): compared with the others' own lists.
    identifying: dict[uuid.UUID, dict[str, str]] = field(default_factory=dict)
    baselines: dict[tuple[RouteRule, uuid.UUID], httpx.Response] = field(default_factory=dict)

    def auth(self, tenant: ProbeTenant) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[tenant.id]}"}

    def base(self, rule: RouteRule) -> str:
        return self.service_urls[rule.service].rstrip("/")

    async def view(self, rule: RouteRule, owner: ProbeTenant, resource: Resource) -> tuple[int | None, Any]:
        """The owner's view of its resource (cached per URL), merged into what identifies the owner."""
        documents = [resource.view] if resource.view is not None else []
        status = None
        path = rule.view_url(resource.value)
        if path is not None:
            url = f"{self.base(rule)}{path}"
            if url not in self.views:
                self.views[url] = await _read_view(self.http, url, self.auth(owner))
            status, document = self.views[url]
            if document is not None:
                documents.append(document)
        candidates: dict[str, str] = {}
        for document in documents:
            for value, where in identifying_values(document).items():
                candidates.setdefault(value, where)
            values = all_values(document)
            self.values.setdefault(owner.id, set()).update(values)
            if isinstance(document, dict) and document.get("grantee_tenant_id"):  # the grantee sees it too
                self.values.setdefault(uuid.UUID(str(document["grantee_tenant_id"])), set()).update(values)
        if rule.query is None:
            self.identifying.setdefault(owner.id, {}).update(candidates)
        return status, candidates

    async def baseline(self, rule: RouteRule, actor: ProbeTenant) -> httpx.Response:
        """What the actor gets for a resource that does not exist: the answer B's resource must look like."""
        key = (rule, actor.id)
        if key not in self.baselines:
            url = f"{self.base(rule)}{rule.url(str(uuid.uuid4()))}"
            self.baselines[key] = await self.http.request(rule.method, url, headers=self.auth(actor), json=rule.body)
        return self.baselines[key]


def _problem_type(response: httpx.Response) -> str | None:
    body = parsed(response)
    return str(body.get("type")) if isinstance(body, dict) and "type" in body else None


async def _probe_resource_route(run: _Run, rule: RouteRule, actor: ProbeTenant, target: ProbeTenant) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "service": rule.service,
        "method": rule.method,
        "path": rule.path,
        "actor": str(actor.id),
        "target": str(target.id),
    }
    try:
        resource = await run.resources.get(str(rule.target), target, actor)
    except Unavailable as exc:
        return {**entry, "outcome": "skipped", "reason": exc.reason}
    owner_status, candidates = await run.view(rule, target, resource)
    own_values = run.values.get(actor.id, set())
    baseline = await run.baseline(rule, actor)
    url = f"{run.base(rule)}{rule.url(resource.value)}"
    response = await run.http.request(rule.method, url, headers=run.auth(actor), json=rule.body)
    request = f"{rule.method} {rule.url(resource.value)}"
    leaks = find_leaks(response, candidates, common=own_values, baseline=baseline.text)
    problem = response.headers.get("content-type", "").startswith("application/problem+json")
    answered = (response.status_code, _problem_type(response))
    if response.status_code != 404 and answered == (baseline.status_code, _problem_type(baseline)) and not leaks:
        # The prober is refused the same way for a resource that does not exist (a role it lacks, its own
        # organization missing): the call never reached the lookup, so it proves nothing either way.
        return {
            **entry,
            "request": request,
            "status": response.status_code,
            "outcome": "skipped",
            "reason": f"sans conclusion : {actor.key} reçoit aussi HTTP {response.status_code} pour une ressource "
            f"inexistante ({_problem_text(response)})",
        }
    violations = []
    evidence = {"status": response.status_code, "answer": response.text[:300]}
    if response.status_code != 404:
        violations.append(f"réponse HTTP {response.status_code} au lieu de 404")
    if not problem:
        violations.append("la réponse n'est pas un problem+json (RFC 9457)")
    if (response.status_code, _problem_type(response)) != (baseline.status_code, _problem_type(baseline)):
        violations.append(
            f"la réponse (HTTP {response.status_code}, {_problem_type(response)}) diffère de celle d'une ressource "
            f"inexistante (HTTP {baseline.status_code}, {_problem_type(baseline)}) : "
            "elle révèle que la ressource existe"
        )
    if leaks:
        violations.append(f"la réponse contient {len(leaks)} valeur(s) identifiant la ressource de la cible")
    return {
        **entry,
        "request": request,
        "resource": {"kind": rule.target, "id": resource.value, "origin": resource.origin},
        "status": response.status_code,
        "problem_json": problem,
        "owner_view_status": owner_status,
        "identifying_values_compared": len(candidates),
        "baseline_status": baseline.status_code,
        "leaked": leaks,
        "outcome": "violation" if violations else "refused",
        "violations": [
            finding(v, prober=_who(actor), target=_who(target), request=request, evidence=leaks or evidence)
            for v in violations
        ],
    }


async def _probe_own_route(run: _Run, rule: RouteRule, actor: ProbeTenant) -> list[dict[str, Any]]:
    """A's own list must hold nothing that identifies another tenant's rows."""
    response = await run.http.get(f"{run.base(rule)}{rule.path}", headers=run.auth(actor))
    own = run.values.get(actor.id, set())
    results = []
    for target in (t for t in run.tenants if t.id != actor.id):
        leaks = find_leaks(response, run.identifying.get(target.id, {}), common=own)
        violations = []
        if response.status_code >= 500:
            violations.append(f"réponse HTTP {response.status_code} (erreur du service)")
        if leaks:
            violations.append(f"la liste de la collectivité sondeuse contient {len(leaks)} valeur(s) de la cible")
        request = f"GET {rule.path}"
        results.append(
            {
                "service": rule.service,
                "method": rule.method,
                "path": rule.path,
                "actor": str(actor.id),
                "target": str(target.id),
                "request": request,
                "status": response.status_code,
                "identifying_values_compared": len(run.identifying.get(target.id, {})),
                "leaked": leaks,
                "outcome": "violation" if violations else "refused",
                "violations": [
                    finding(
                        v,
                        prober=_who(actor),
                        target=_who(target),
                        request=request,
                        evidence=leaks or {"status": response.status_code, "answer": response.text[:300]},
                    )
                    for v in violations
                ],
            }
        )
    return results


def _route(rule: RouteRule) -> str:
    return f"{rule.service} {rule.method} {rule.path}"


def coverage(
    probes: list[dict[str, Any]], service_urls: Mapping[str, str], not_run: str | None
) -> list[dict[str, Any]]:
    """How each tenant-scoped route was checked; ``gap`` when it was not, with the reason."""
    rows = []
    for rule in routes():
        if rule.scope not in ("tenant-resource", "tenant-own", "console-session"):
            continue
        row: dict[str, Any] = {"route": _route(rule), "scope": rule.scope}
        mine = [p for p in probes if (p["service"], p["method"], p["path"]) == (rule.service, rule.method, rule.path)]
        skipped = sorted({p["reason"] for p in mine if p["outcome"] == "skipped"})
        if rule.scope == "console-session":
            row |= {
                "status": "by_design",
                "reason": "page de la console derrière une session de navigateur : elle appelle les services avec "
                "le jeton de l'agent, dont les routes sont sondées ici",
            }
        elif rule.scope == "tenant-own" and rule.method != "GET":
            row |= {
                "status": "by_design",
                "reason": "écrit dans la collectivité du jeton, et le corps ne peut nommer aucune autre collectivité "
                "(schéma strict)",
            }
        elif not_run is not None:
            row |= {"status": "gap", "reason": f"sondes d'API non exécutées : {not_run}"}
        elif rule.service not in service_urls:
            row |= {
                "status": "gap",
                "reason": f"le service {rule.service} n'est pas fourni au rapport (--service-url {rule.service}=…)",
            }
        elif skipped:
            row |= {"status": "gap", "probes": len(mine) - len(skipped), "reason": " ; ".join(skipped)}
        else:
            row |= {"status": "probed", "probes": len(mine)}
        rows.append(row)
    return rows


async def probe_apis(
    *,
    service_urls: Mapping[str, str],
    tenants: list[ProbeTenant],
    issuer: str | None,
    client_id: str,
    secret: SecretStr | None,
    http_timeout_seconds: float = 20.0,
) -> dict[str, Any]:
    """Every cross-tenant call of every tenant-scoped route of the services given."""
    if not service_urls:
        reason = "aucune URL de service configurée (--service-url ou SOCLE_TENANCY_ISOLATION_SERVICE_URLS)"
    elif issuer is None or secret is None:
        reason = (
            "les jetons de sonde demandent l'émetteur OIDC et le secret du client de la plateforme "
            "(SOCLE_TENANCY_OIDC_ISSUER, SOCLE_TENANCY_KEYCLOAK_CLIENT_SECRET)"
        )
    else:
        return await _probe_all(service_urls, tenants, issuer, client_id, secret, http_timeout_seconds)
    return {
        "status": "not run",
        "reason": reason,
        "probes": [],
        "unclassified": {},
        "coverage": coverage([], service_urls, reason),
    }


async def _probe_all(
    service_urls: Mapping[str, str],
    tenants: list[ProbeTenant],
    issuer: str,
    client_id: str,
    secret: SecretStr,
    http_timeout_seconds: float,
) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=http_timeout_seconds) as http:
        unclassified = {s: await unclassified_routes(http, s, url) for s, url in sorted(service_urls.items())}
        identities = ProbeIdentities(issuer, client_id, secret, http)
        resources: ProbeResources | None = None
        probes: list[dict[str, Any]] = []
        try:
            tokens = {t.id: await identities.token_for(t) for t in tenants}
            resources = ProbeResources(http, identities, service_urls, tenants, tokens)
            run = _Run(http, service_urls, tenants, tokens, resources)
            served = [r for r in routes() if r.service in service_urls]
            resource_rules = [r for r in served if r.scope == "tenant-resource"]
            # First every owner's view, so that each probe knows what the prober's own views hold.
            for rule in resource_rules:
                for target in tenants:
                    for actor in (t for t in tenants if t.id != target.id):
                        try:
                            await run.view(rule, target, await resources.get(str(rule.target), target, actor))
                        except Unavailable:
                            continue
            for rule in resource_rules:
                for target in tenants:
                    for actor in (t for t in tenants if t.id != target.id):
                        probes.append(await _probe_resource_route(run, rule, actor, target))
            for rule in (r for r in served if r.scope == "tenant-own" and r.method == "GET"):
                for actor in tenants:
                    probes.extend(await _probe_own_route(run, rule, actor))
        finally:
            cleaned = await resources.cleanup() if resources is not None else {"removed": 0, "not_removed": []}
            removed = await identities.cleanup()
    return {
        "status": "ran",
        "role": PROBE_ROLE,
        "probe_clients_removed": removed,
        "probe_resources": cleaned,
        "probes": probes,
        "unclassified": unclassified,
        "coverage": coverage(probes, service_urls, None),
    }
