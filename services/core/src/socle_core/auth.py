"""Bearer-token verification against the Keycloak realm, and the authenticated principal.

Verification is deliberately strict and explicit rather than left to a library's defaults:
the algorithm comes from an allow-list of asymmetric algorithms (never ``none``, never an
HMAC keyed with a public key); keys come only from the realm's JWKS (never from ``jku``,
``x5u`` or an embedded ``jwk``); an unknown ``kid`` triggers at most one JWKS refresh;
issuer, audience, expiry, issue time and not-before are checked with a small leeway, and
the lifetime is bounded; an ID token is not accepted where an access token is expected; and
the ``organization`` claim's alias and tenant id must name the same tenant of the registry
(``socle_core.directory``, ADR 0013).

This module is the only producer of ``TenantId``: from the token's ``organization`` claim,
which must name exactly one tenant for tenant-scoped work. It also refuses a request that
names another tenant than the token's (``X-Socle-Tenant`` header, ``tenant_id``/``tenant``
in a JSON body) with a 404, and reports every such attempt to ``on_cross_tenant_attempt``.
Device and integration credentials (``socle_core.credentials``) are the other producer, on
the routes that declare them (``socle_core.access``): each route says which authentication
applies, and the middleware here follows that declaration, never a list of paths.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, NoReturn, TypeGuard
from uuid import UUID

import httpx
import structlog
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from socle_core.access import Authentication, authentication_of
from socle_core.credentials import CREDENTIAL_FORMAT, CredentialVerifier, Integration, InvalidCredential
from socle_core.directory import TenantBindings
from socle_core.errors import Forbidden, NotFound, ServiceUnavailable, Unauthenticated
from socle_core.tenant import TenantId, _issue

log = structlog.get_logger("socle.auth")

#: Header parameters that would let a token choose its own verification key.
_FORBIDDEN_HEADERS = ("jku", "x5u", "jwk", "x5c", "crit")
_KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
_KID = re.compile(r"^[A-Za-z0-9._~+/=-]{1,128}$")

#: Header in which the console or an integration may name the tenant it acts for (id or alias).
TENANT_HEADER = "X-Socle-Tenant"
#: Top-level fields of a JSON object body that name a tenant; they must name the caller's own.
TENANT_BODY_FIELDS = ("tenant_id", "tenant")


class InvalidToken(Unauthenticated):
    slug, title = "invalid-token", "Jeton refusé"


class TokenVerifier:
    """Verifies access tokens issued by one Keycloak realm."""

    def __init__(
        self,
        issuer: str,
        audience: str,
        *,
        algorithms: Iterable[str] = ("RS256", "PS256", "ES256"),
        leeway_seconds: int = 30,
        max_lifetime_seconds: int = 3600,
        jwks_cache_seconds: int = 300,
        min_refresh_interval_seconds: float = 10.0,
        http_client: httpx.AsyncClient | None = None,
        timeout_seconds: float = 5.0,
        bindings: TenantBindings | None = None,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self.algorithms = frozenset(algorithms)
        self.leeway = leeway_seconds
        self.max_lifetime = max_lifetime_seconds
        self.bindings = bindings
        self.jwks_cache_seconds = jwks_cache_seconds
        self.min_refresh_interval = min_refresh_interval_seconds
        self._http = http_client or httpx.AsyncClient(timeout=timeout_seconds)
        self._owns_http = http_client is None
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched_at = 0.0
        self._jwks_uri: str | None = None
        self._lock = asyncio.Lock()
        self.refresh_count = 0

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def _discover(self) -> str:
        if self._jwks_uri is None:
            response = await self._http.get(f"{self.issuer}/.well-known/openid-configuration")
            response.raise_for_status()
            document = response.json()
            if document.get("issuer") != self.issuer:
                raise ServiceUnavailable(
                    f"le fournisseur d'identité annonce l'émetteur {document.get('issuer')!r}, "
                    f"attendu {self.issuer!r} : vérifiez le réglage de l'émetteur OIDC"
                )
            self._jwks_uri = str(document["jwks_uri"])
        return self._jwks_uri

    async def refresh_keys(self) -> None:
        """Fetch the realm's signing keys (used at start-up, for readiness and on unknown kid)."""
        try:
            response = await self._http.get(await self._discover())
            response.raise_for_status()
            keys = response.json().get("keys", [])
        except (httpx.HTTPError, ValueError) as exc:
            raise ServiceUnavailable(f"impossible de lire les clés du fournisseur d'identité : {exc}") from exc
        self._keys = {
            str(k["kid"]): k for k in keys if isinstance(k, dict) and k.get("kid") and k.get("use", "sig") == "sig"
        }
        self._fetched_at = time.monotonic()
        self.refresh_count += 1

    async def ensure_keys(self, max_age_seconds: float = 30.0) -> None:
        """Readiness: keys fetched recently enough, without hammering the provider per probe."""
        if not self._keys or time.monotonic() - self._fetched_at > max_age_seconds:
            async with self._lock:
                await self.refresh_keys()

    async def _key_for(self, kid: str) -> dict[str, Any] | None:
        async with self._lock:
            now = time.monotonic()
            stale = now - self._fetched_at > self.jwks_cache_seconds
            if stale or (kid not in self._keys and now - self._fetched_at >= self.min_refresh_interval):
                await self.refresh_keys()
            return self._keys.get(kid)

    async def verify(self, token: str) -> dict[str, Any]:
        """Return the claims of a valid access token, or raise ``InvalidToken`` saying why."""
        header = _header(token)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise InvalidToken(f"l'algorithme de signature {alg!r} n'est pas accepté")
        for name in _FORBIDDEN_HEADERS:
            if name in header:
                raise InvalidToken(f"le paramètre d'en-tête {name!r} du jeton n'est pas accepté")
        kid = header.get("kid")
        if not isinstance(kid, str) or not _KID.match(kid):
            raise InvalidToken("le jeton n'a pas d'identifiant de clé (kid) valide")
        jwk = await self._key_for(kid)
        if jwk is None:
            raise InvalidToken("le jeton est signé par une clé inconnue")
        if jwk.get("kty") != _KEY_TYPES.get(alg[:2]) or jwk.get("alg", alg) != alg:
            raise InvalidToken("l'algorithme du jeton ne correspond pas à la clé du royaume")
        key = _import_key(jwk)
        try:
            decoded = jwt.decode(token, key, algorithms=[alg])
        except (JoseError, ValueError) as exc:
            raise InvalidToken("la signature du jeton est invalide") from exc
        claims = dict(decoded.claims)
        self._check_claims(claims)
        await self._check_tenant_binding(claims)
        return claims

    def _check_claims(self, claims: dict[str, Any]) -> None:
        self._check_issuer_and_audience(claims)
        self._check_type_and_lifetime(claims)

    async def _check_tenant_binding(self, claims: Mapping[str, Any]) -> None:
        """The organization alias and the tenant id of the claim must be one tenant of the registry.

        Otherwise checks by alias (the Keycloak organization, the EPCI's key) and checks by
        id (row-level security) would each see a different tenant in one token.
        """
        if self.bindings is None:
            return
        aliases, tenant = _organizations(claims.get("organization"))
        if tenant is not None and not await self.bindings.agree(aliases[0], tenant.uuid):
            raise InvalidToken(
                f"l'organisation {aliases[0]!r} et le tenant_id {tenant.uuid} du jeton "
                "ne désignent pas le même tenant du registre"
            )

    def _check_issuer_and_audience(self, claims: dict[str, Any]) -> None:
        if claims.get("iss") != self.issuer:
            raise InvalidToken("l'émetteur du jeton n'est pas le royaume de cette plateforme")
        audience = claims.get("aud")
        if isinstance(audience, str):
            audiences = [audience]
        elif isinstance(audience, list) and all(isinstance(a, str) for a in audience):
            audiences = audience
        else:  # an object's keys, a number: RFC 7519 allows a string or an array of strings only
            raise InvalidToken("l'audience du jeton (aud) doit être une chaîne ou une liste de chaînes")
        if self.audience not in audiences:
            raise InvalidToken(f"l'audience du jeton n'inclut pas {self.audience!r}")

    def _check_type_and_lifetime(self, claims: dict[str, Any]) -> None:
        """An access token's: ``typ`` Bearer and a bounded lifetime (other verifiers override this)."""
        token_type = claims.get("typ")
        if token_type is None:
            raise InvalidToken("le jeton n'a pas de type (typ) : un jeton d'accès porte typ=Bearer")
        if str(token_type).lower() != "bearer":
            raise InvalidToken(f"un jeton de type {token_type} n'est pas un jeton d'accès")
        self._check_lifetime(claims)

    def _check_lifetime(self, claims: Mapping[str, Any]) -> None:
        """``iat`` and ``exp`` required, now between them (with the leeway), and no more than the maximum apart.

        A token valid for years is refused even when correctly signed: a leaked one would stay
        usable long after every session of its subject ended.
        """
        now = time.time()
        exp, iat = claims.get("exp"), claims.get("iat")
        if not _is_number(exp):
            raise InvalidToken("le jeton n'a pas de date d'expiration (exp)")
        if not _is_number(iat):
            raise InvalidToken("le jeton n'a pas de date d'émission (iat)")
        if now > exp + self.leeway:
            raise InvalidToken("le jeton a expiré")
        if now + self.leeway < iat:
            raise InvalidToken("le jeton est émis dans le futur")
        if exp - iat > self.max_lifetime:
            raise InvalidToken(
                f"la durée de validité du jeton ({int(exp - iat)} s entre iat et exp) dépasse "
                f"le maximum accepté ({self.max_lifetime} s)"
            )
        nbf = claims.get("nbf")
        if _is_number(nbf) and now + self.leeway < nbf:
            raise InvalidToken("le jeton n'est pas encore valide (nbf)")


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _b64json(part: str) -> dict[str, Any]:
    padded = part + "=" * (-len(part) % 4)
    value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    if not isinstance(value, dict):
        raise ValueError("not an object")
    return value


def _header(token: str) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise InvalidToken("le jeton n'est pas un JWT signé (en-tête.contenu.signature)")
    try:
        return _b64json(parts[0])
    except (ValueError, UnicodeError) as exc:
        raise InvalidToken("l'en-tête du jeton n'est pas du JSON en base64url valide") from exc


def _import_key(jwk: dict[str, Any]) -> RSAKey | ECKey | OKPKey:
    kty = jwk.get("kty")
    if kty == "RSA":
        return RSAKey.import_key(jwk)
    if kty == "EC":
        return ECKey.import_key(jwk)
    if kty == "OKP":
        return OKPKey.import_key(jwk)
    raise InvalidToken("le type de clé du royaume n'est pas pris en charge")


@dataclass(frozen=True)
class Principal:
    """Who is calling: a person (agent, admin, auditor) or a service account."""

    subject: str
    roles: frozenset[str]
    scopes: frozenset[str]
    client_id: str | None
    tenant: TenantId | None
    organization: str | None
    organizations: tuple[str, ...]
    username: str | None = None
    email: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def is_service_account(self) -> bool:
        return bool(self.username and self.username.startswith("service-account-"))

    @property
    def actor(self) -> str:
        """Who acted, as the audit log names them: the token's subject, else its client."""
        return self.subject or self.client_id or "unknown"

    def has_any_role(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))

    def require_tenant(self) -> TenantId:
        """The single tenant this request acts for; refuses a token naming none or several."""
        if self.tenant is not None:
            return self.tenant
        if len(self.organizations) > 1:
            raise Forbidden(
                "ce jeton nomme plusieurs communes : reconnectez-vous en en choisissant une "
                "(demandez la portée organization:<alias>)",
                organizations=list(self.organizations),
            )
        raise Forbidden("ce jeton n'est rattaché à aucune commune ni à l'EPCI de la plateforme")

    def require_role(self, *roles: str) -> None:
        if not self.has_any_role(*roles):
            raise Forbidden(f"cette action demande l'un des rôles : {', '.join(sorted(roles))}")

    def names_own_tenant(self, tenant_key: str | UUID) -> bool:
        """True when ``tenant_key`` (a tenant id or organization alias) is one this token names."""
        named = str(tenant_key).strip()
        with contextlib.suppress(ValueError):  # an alias stays as it is; an id is compared in canonical form
            named = str(UUID(named))
        own = set(self.organizations)
        if self.tenant is not None:
            own.add(str(self.tenant.uuid))
        return named in own

    def require_same_tenant(self, tenant_key: str | UUID, *, where: str = "path", path: str = "") -> TenantId:
        """A tenant named in a path, header or body must be the caller's own; another does not exist."""
        tenant = self.require_tenant()
        if not self.names_own_tenant(tenant_key):
            refuse_cross_tenant(self, str(tenant_key), where=where, path=path)
        return tenant


@dataclass(frozen=True)
class CrossTenantAttempt:
    """A request that named another tenant than its token's: refused with 404, reported."""

    subject: str
    client_id: str | None
    tenant_id: str | None
    organization: str | None
    named: str
    where: str
    path: str


def on_cross_tenant_attempt(attempt: CrossTenantAttempt) -> None:
    """Where every refused cross-tenant attempt is reported (the audit log is wired here)."""
    log.warning("cross_tenant_attempt", **asdict(attempt))


class CrossTenantRefused(NotFound):
    """The 404 of a cross-tenant attempt; the app's handler also writes it to the caller's audit chain."""

    def __init__(self, attempt: CrossTenantAttempt, tenant: TenantId | None = None) -> None:
        super().__init__("aucun tenant de ce nom")
        self.attempt = attempt
        #: The caller's own tenant (from its token): the chain the attempt is recorded in.
        self.tenant = tenant


def refuse_cross_tenant(principal: Principal, named: str, *, where: str, path: str = "") -> NoReturn:
    """Report the attempt, then answer as if the other tenant did not exist (404 before 403)."""
    attempt = CrossTenantAttempt(
        subject=principal.subject,
        client_id=principal.client_id,
        tenant_id=str(principal.tenant) if principal.tenant else None,
        organization=principal.organization,
        named=named[:200],
        where=where,
        path=path,
    )
    on_cross_tenant_attempt(attempt)
    raise CrossTenantRefused(attempt, principal.tenant)


def principal_from_claims(claims: Mapping[str, Any]) -> Principal:
    """Map Keycloak's claims to a Principal; the ``organization`` claim gives the tenant."""
    realm_access = claims.get("realm_access") or {}
    roles = frozenset(str(r) for r in realm_access.get("roles", []) if isinstance(r, str))
    scopes = frozenset(str(claims.get("scope", "")).split())
    organizations, tenant = _organizations(claims.get("organization"))
    return Principal(
        subject=str(claims.get("sub", "")),
        roles=roles,
        scopes=scopes,
        client_id=claims.get("azp") if isinstance(claims.get("azp"), str) else None,
        tenant=tenant,
        organization=organizations[0] if len(organizations) == 1 else None,
        organizations=organizations,
        username=claims.get("preferred_username"),
        email=claims.get("email"),
        claims=dict(claims),
    )


def _organizations(claim: Any) -> tuple[tuple[str, ...], TenantId | None]:
    """Read Keycloak's organization claim: a list of aliases, or alias → {id, attributes}."""
    if isinstance(claim, str):
        return (claim,), None
    if isinstance(claim, list):
        return tuple(str(a) for a in claim), None
    if not isinstance(claim, dict) or not claim:
        return (), None
    aliases = tuple(sorted(str(a) for a in claim))
    if len(aliases) != 1:
        return aliases, None
    details = claim[aliases[0]]
    raw = details.get("tenant_id") if isinstance(details, dict) else None
    if isinstance(raw, list):
        raw = raw[0] if len(raw) == 1 else None
    try:
        return aliases, _issue(UUID(str(raw))) if raw else None
    except ValueError:
        log.warning("organization_without_valid_tenant_id", organization=aliases[0])
        return aliases, None


def system_tenant(tenant_uuid: UUID, *, reason: str) -> TenantId:
    """A tenant context for platform work not driven by a token (onboarding, workers).

    Every call is logged with its reason, so such contexts stay rare and visible.
    """
    log.info("system_tenant_context", tenant_id=str(tenant_uuid), reason=reason)
    return _issue(tenant_uuid)


class AuthenticationMiddleware:
    """Authenticates each request as its route declares (``socle_core.access.Authentication``).

    Bearer routes take a Keycloak access token, credential routes a device or integration
    credential; public and console-session routes pass (the console's pages check their
    session cookie). One kind is never accepted where the other is declared.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            kind = authentication_of(scope)
            if kind is Authentication.BEARER:
                connection: ASGIConnection[Any, Any, Any, Any] = ASGIConnection(scope)
                scope["user"], scope["auth"] = await _bearer(connection)
            elif kind is Authentication.CREDENTIAL:
                scope["user"] = await _credential(ASGIConnection(scope))
                scope["auth"] = None
                structlog.contextvars.bind_contextvars(
                    subject=scope["user"].subject, tenant_id=str(scope["user"].tenant)
                )
        await self.app(scope, receive, send)


def _presented(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    scheme, _, value = connection.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


async def _bearer(connection: ASGIConnection[Any, Any, Any, Any]) -> tuple[Principal, dict[str, Any]]:
    token = _presented(connection)
    if token is None:
        raise Unauthenticated(
            "cette route demande un jeton d'accès : envoyez 'Authorization: Bearer <jeton>'",
            headers={"WWW-Authenticate": 'Bearer realm="socle"'},
        )
    if CREDENTIAL_FORMAT.match(token):
        raise InvalidToken("cette route demande un jeton d'accès Keycloak : une clé d'intégration n'y est pas acceptée")
    verifier: TokenVerifier = connection.app.state.token_verifier
    claims = await verifier.verify(token)
    principal = principal_from_claims(claims)
    structlog.contextvars.bind_contextvars(
        subject=principal.subject, tenant_id=str(principal.tenant) if principal.tenant else None
    )
    return principal, claims


async def _credential(connection: ASGIConnection[Any, Any, Any, Any]) -> Integration:
    presented = _presented(connection)
    if presented is None:
        raise InvalidCredential("cette route demande une clé d'intégration : envoyez 'Authorization: Bearer socle_…'")
    if presented.count(".") == 2:
        raise InvalidCredential("cette route demande une clé d'intégration (socle_…), pas un jeton d'accès")
    verifier: CredentialVerifier | None = connection.app.state.get("credential_verifier")
    if verifier is None:
        raise ServiceUnavailable("ce service ne vérifie pas de clé d'intégration")
    return await verifier.verify(presented)


class TenantGuardMiddleware(ASGIMiddleware):
    """Refuses (404) a request whose header or JSON body names another tenant than its token.

    Runs after authentication on the routes that declare bearer tokens, for callers whose
    token names an organization (credential routes are never read here); platform-wide
    callers (operator, auditor) have no tenant to compare with, and a tenant can reach the
    database only through ``TenantId``, which never comes from a header or a body. The body
    is read once and cached by Litestar for the handler, and decoded here as the handler will
    decode it: ``RequestInputMiddleware`` has already refused (415) a body of another media
    type on a route that reads JSON, so no body reaches a handler without this check.
    """

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        principal = scope.get("user")
        bearer = authentication_of(scope) is Authentication.BEARER  # a credential's tenant is its own: no body read
        if bearer and isinstance(principal, Principal) and principal.organizations:
            request: Request[Any, Any, Any] = Request(scope, receive)
            path = request.url.path
            named = request.headers.get(TENANT_HEADER)
            if named is not None and not principal.names_own_tenant(named):
                refuse_cross_tenant(principal, named, where="header", path=path)
            if "json" in request.headers.get("content-type", ""):
                for field_name, value in _tenant_fields(await request.body()):
                    if not principal.names_own_tenant(value):
                        refuse_cross_tenant(principal, value, where=f"body.{field_name}", path=path)
        await next_app(scope, receive, send)


class _Members(list[tuple[str, Any]]):
    """An object's members in order, duplicates kept: a later duplicate may not hide another tenant."""


def _tenant_fields(body: bytes) -> list[tuple[str, str]]:
    """The tenant-naming members of a JSON object body, as decoded (``"tenant\\u005fid"`` is ``tenant_id``).

    Every member is looked at, duplicates included; anything unparsable is the handler's to refuse.
    """
    try:
        document = json.loads(body, object_pairs_hook=_Members)
    except (ValueError, RecursionError):
        return []
    if not isinstance(document, _Members):
        return []
    return [
        (name, str(value)) for name, value in document if name in TENANT_BODY_FIELDS and isinstance(value, str | int)
    ]


def tenant_guard_middleware() -> TenantGuardMiddleware:
    return TenantGuardMiddleware()
