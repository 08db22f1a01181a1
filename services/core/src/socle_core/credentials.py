"""Device and integration credentials: the second way the auth layer issues a ``TenantId`` (ADR 0016).

A webhook (The Things Stack, ChirpStack), an HTTP batch client or an MQTT device presents a
credential ``socle_<prefix>_<secret>`` instead of a Keycloak token: the prefix (12 characters
``[a-z0-9]``) is the lookup id, shown in lists and logs; the secret (32 random bytes, base64url)
is shown once, at creation. Only HMAC-SHA256(pepper, secret) is stored, the pepper being a
setting of the service and never in the database. The service that owns the credentials
(ingestion) implements ``CredentialResolver`` against its own table; ``CredentialVerifier``
compares in constant time and gives the ``Integration``: its tenant and integration id.

Routes choose this authentication in their declaration (``socle_core.access.credential``):
the authentication middleware reads the credential from ``Authorization: Bearer`` there, and
the tenant guard never reads their bodies (a tenant comes from the credential alone).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from socle_core.errors import Unauthenticated
from socle_core.tenant import TenantId, _issue

#: ``socle_`` + the lookup prefix + ``_`` + the secret.
CREDENTIAL_FORMAT = re.compile(r"^socle_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$")
PREFIX_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
PREFIX_LENGTH = 12
SECRET_BYTES = 32
#: The pepper's minimum length: as long as the digest it keys.
MIN_PEPPER_BYTES = 32
#: What WWW-Authenticate says on a refused credential route.
CHALLENGE = 'Bearer realm="socle-integrations"'


class InvalidCredential(Unauthenticated):
    slug, title = "invalid-credential", "Clé d'intégration refusée"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": CHALLENGE})


@dataclass(frozen=True)
class IssuedCredential:
    """A new credential: ``value`` is given to the integration once, ``digest`` is what is stored."""

    prefix: str
    value: str
    digest: bytes


@dataclass(frozen=True)
class StoredCredential:
    """A credential's row as the owning service keeps it (never its secret)."""

    tenant_id: UUID
    integration_id: UUID
    digest: bytes
    revoked: bool


class CredentialResolver(Protocol):
    """Finds a credential's row by its prefix; implemented by the service that owns the table."""

    async def resolve(self, prefix: str) -> StoredCredential | None: ...


@dataclass(frozen=True)
class Integration:
    """The authenticated caller of a credential route: a device or integration of one tenant."""

    tenant: TenantId
    integration_id: UUID
    prefix: str

    @property
    def subject(self) -> str:
        """The actor recorded for its calls (audit, logs)."""
        return f"integration:{self.integration_id}"


def _pepper_bytes(pepper: str | bytes) -> bytes:
    raw = pepper.encode() if isinstance(pepper, str) else pepper
    if len(raw) < MIN_PEPPER_BYTES:
        raise ValueError(f"the credential pepper must be at least {MIN_PEPPER_BYTES} bytes long")
    return raw


def digest(pepper: str | bytes, secret: str) -> bytes:
    """HMAC-SHA256 of the secret under the server's pepper: what the table stores."""
    return hmac.new(_pepper_bytes(pepper), secret.encode("ascii"), hashlib.sha256).digest()


def issue(pepper: str | bytes) -> IssuedCredential:
    """A new random credential and the digest to store for it."""
    prefix = "".join(secrets.choice(PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))
    secret = secrets.token_urlsafe(SECRET_BYTES)
    return IssuedCredential(prefix, f"socle_{prefix}_{secret}", digest(pepper, secret))


class CredentialVerifier:
    """Verifies a presented credential against the owning service's table."""

    def __init__(self, resolver: CredentialResolver, pepper: str | bytes) -> None:
        self.resolver = resolver
        self._pepper = _pepper_bytes(pepper)
        #: Compared against when the prefix is unknown, so both refusals take the same work.
        self._absent = digest(self._pepper, secrets.token_urlsafe(SECRET_BYTES))

    async def verify(self, presented: str) -> Integration:
        """The integration a credential belongs to, or ``InvalidCredential`` (401) saying why."""
        match = CREDENTIAL_FORMAT.match(presented)
        if match is None:
            raise InvalidCredential("la clé d'intégration n'a pas la forme socle_<préfixe>_<secret>")
        prefix, secret = match.groups()
        stored = await self.resolver.resolve(prefix)
        matches = hmac.compare_digest(digest(self._pepper, secret), stored.digest if stored else self._absent)
        if stored is None or not matches:  # one answer for both: a prefix cannot be confirmed without its secret
            raise InvalidCredential("clé d'intégration inconnue ou secret incorrect")
        if stored.revoked:
            raise InvalidCredential("cette clé d'intégration a été révoquée")
        return Integration(_issue(stored.tenant_id), stored.integration_id, prefix)
