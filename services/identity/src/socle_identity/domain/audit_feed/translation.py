"""How a Keycloak event reads in the audit log: its action, outcome, actor, target and details.

Pure functions over Keycloak's JSON (``EventRepresentation`` and ``AdminEventRepresentation``):
no I/O here, the tenant of an event is found by ``tenants.TenantResolver``. Details keep
metadata only (ids, names, types, the client's address): never a token, a secret or an
admin event's full representation, which may carry a client secret.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from socle_core.audit import Outcome

Stream = Literal["events", "admin-events"]
STREAMS: tuple[Stream, ...] = ("events", "admin-events")

#: Keycloak user and client event types imported, with their audit action and outcome. Actions
#: are ``area.verb``, so filtering the audit log on ``login`` gives successes and failures alike.
EVENT_ACTIONS: dict[str, tuple[str, Outcome]] = {
    "LOGIN": ("login.success", "success"),
    "LOGIN_ERROR": ("login.failed", "refused"),
    "LOGOUT": ("logout.success", "success"),
    "LOGOUT_ERROR": ("logout.failed", "refused"),
    "CODE_TO_TOKEN": ("token.issue", "success"),
    "CODE_TO_TOKEN_ERROR": ("token.issue_refused", "refused"),
    "REFRESH_TOKEN": ("token.refresh", "success"),
    "REFRESH_TOKEN_ERROR": ("token.refresh_refused", "refused"),
    "TOKEN_EXCHANGE": ("token.exchange", "success"),
    "TOKEN_EXCHANGE_ERROR": ("token.exchange_refused", "refused"),
    "CLIENT_LOGIN": ("service_account.token", "success"),
    "CLIENT_LOGIN_ERROR": ("service_account.token_refused", "refused"),
    "IDENTITY_PROVIDER_FIRST_LOGIN": ("login.first_brokered", "success"),
    "IMPERSONATE": ("user.impersonate", "success"),
    "UPDATE_PASSWORD": ("credentials.update", "success"),
    "UPDATE_CREDENTIAL": ("credentials.update", "success"),
    "UPDATE_TOTP": ("credentials.update", "success"),
    "REMOVE_TOTP": ("credentials.remove", "success"),
    "REMOVE_CREDENTIAL": ("credentials.remove", "success"),
    "RESET_PASSWORD": ("credentials.reset", "success"),
    "USER_DISABLED_BY_TEMPORARY_LOCKOUT": ("account.locked", "success"),
    "USER_DISABLED_BY_PERMANENT_LOCKOUT": ("account.locked", "success"),
    "DELETE_ACCOUNT": ("account.delete", "success"),
}
#: Event types whose subject is a client (a service account), not a person.
CLIENT_EVENT_TYPES = frozenset({"CLIENT_LOGIN", "CLIENT_LOGIN_ERROR"})

#: Details of user events worth keeping; the rest (token ids, redirect URIs...) are left in Keycloak.
_KEPT_DETAILS = (
    "auth_method",
    "grant_type",
    "scope",
    "username",
    "identity_provider",
    "client_auth_method",
    "reason",
    "impersonator",
    "impersonator_id",
)
_ROLE_MAPPING = re.compile(r"_ROLE_MAPPING$")
_UNSAFE = re.compile(r"[^a-z0-9_-]+")
#: ``organization:<alias>`` in a requested scope names the commune the agent chose.
_ORGANIZATION_SCOPE = re.compile(r"(?:^|\s)organization:(\S+)")


@dataclass(frozen=True)
class Subject:
    """What the tenant of an event is read from."""

    kind: Literal["user", "client", "client_uuid", "organization", "none"]
    id: str | None = None
    #: Organization aliases the event itself names (the scope an agent asked for).
    organizations: tuple[str, ...] = ()
    #: The client id an admin event's representation names, for a client deleted since.
    client_id: str | None = None
    #: The person acted themselves (a login, a token), rather than being changed by an admin.
    acting: bool = False


@dataclass(frozen=True)
class Draft:
    """One Keycloak event as an audit entry, before its tenant is known."""

    stream: Stream
    event_id: str
    time_ms: int
    subject: Subject
    actor: str
    action: str
    target: str | None
    outcome: Outcome
    details: dict[str, Any] = field(default_factory=dict)


def occurred_at(time_ms: int) -> str:
    return dt.datetime.fromtimestamp(time_ms / 1000, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_id(stream: Stream, event: dict[str, Any]) -> str:
    """Keycloak's id of the event; a digest of its content if a store ever omits it."""
    if event.get("id"):
        return str(event["id"])
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"), default=str)
    return f"sha256:{hashlib.sha256(f'{stream}|{canonical}'.encode()).hexdigest()}"


def user_event(event: dict[str, Any]) -> Draft | None:
    """A login, logout, token or credentials event; None for a type the feed does not import."""
    kind = str(event.get("type", ""))
    if kind not in EVENT_ACTIONS:
        return None
    action, outcome = EVENT_ACTIONS[kind]
    raw = event.get("details") or {}
    client_id = event.get("clientId")
    user_id = event.get("userId")
    details: dict[str, Any] = {
        "keycloak_event_id": event_id("events", event),
        "keycloak_type": kind,
        "occurred_at": occurred_at(int(event["time"])),
    }
    for key, value in (
        ("client_id", client_id),
        ("user_id", user_id),
        ("session_id", event.get("sessionId")),
        ("ip_address", event.get("ipAddress")),
        ("error", event.get("error")),
    ):
        if value:
            details[key] = value
    details.update({k: raw[k] for k in _KEPT_DETAILS if raw.get(k)})
    if kind in CLIENT_EVENT_TYPES:
        subject = Subject("client", str(client_id) if client_id else None)
    elif user_id:
        scope = str(raw.get("scope") or "")
        subject = Subject("user", str(user_id), tuple(_ORGANIZATION_SCOPE.findall(scope)), acting=True)
    else:
        subject = Subject("none")
    # The actor is the token's future subject: the user, or the service account's user, whose
    # id every service writes as the actor of the API calls made with that token.
    if user_id:
        actor = str(user_id)
    elif raw.get("username"):
        actor = f"username:{raw['username']}"
    elif client_id:
        actor = f"client:{client_id}"
    else:
        actor = "unknown"
    return Draft(
        stream="events",
        event_id=details["keycloak_event_id"],
        time_ms=int(event["time"]),
        subject=subject,
        actor=actor,
        action=action,
        target=f"client:{client_id}" if client_id else None,
        outcome=outcome,
        details=details,
    )


def admin_event(event: dict[str, Any]) -> Draft:
    """A change made through Keycloak's admin API: ``admin.<resource type>.<operation>``."""
    resource_type = str(event.get("resourceType") or "unknown")
    operation = str(event.get("operationType") or "unknown")
    path = str(event.get("resourcePath") or "")
    auth = event.get("authDetails") or {}
    details: dict[str, Any] = {
        "keycloak_event_id": event_id("admin-events", event),
        "resource_type": resource_type,
        "operation": operation,
        "occurred_at": occurred_at(int(event["time"])),
    }
    for key, value in (
        ("auth_client", auth.get("clientId")),
        ("auth_realm", auth.get("realmId")),
        ("ip_address", auth.get("ipAddress")),
        ("error", event.get("error")),
    ):
        if value:
            details[key] = value
    extra = event.get("details") or {}
    if extra.get("username"):
        details["username"] = extra["username"]
    if _ROLE_MAPPING.search(resource_type):
        roles = _role_names(event.get("representation"))
        if roles:
            details["roles"] = roles
    segments = path.split("/")
    subject = Subject("none")
    if len(segments) >= 2 and segments[1]:
        subject = {
            "users": Subject("user", segments[1]),
            "organizations": Subject("organization", segments[1]),
            "clients": Subject("client_uuid", segments[1], client_id=_client_id(event.get("representation"))),
        }.get(segments[0], subject)
    if auth.get("userId"):
        actor = str(auth["userId"])
    elif auth.get("clientId"):
        actor = f"client:{auth['clientId']}"
    else:
        actor = "unknown"
    return Draft(
        stream="admin-events",
        event_id=details["keycloak_event_id"],
        time_ms=int(event["time"]),
        subject=subject,
        actor=actor,
        action=f"admin.{_word(resource_type)}.{_word(operation)}",
        target=path or None,
        outcome="refused" if event.get("error") else "success",
        details=details,
    )


def _word(value: str) -> str:
    return _UNSAFE.sub("_", value.lower()).strip("_") or "unknown"


def _client_id(representation: Any) -> str | None:
    """The ``clientId`` of a client's representation (creation, update), if it is one."""
    try:
        rep = json.loads(representation) if isinstance(representation, str) else representation
    except ValueError:
        return None
    return str(rep["clientId"]) if isinstance(rep, dict) and rep.get("clientId") else None


def _role_names(representation: Any) -> list[str]:
    """Role names of a role-mapping change (the representation is a JSON list of roles)."""
    try:
        roles = json.loads(representation) if isinstance(representation, str) else representation
    except ValueError:
        return []
    if not isinstance(roles, list):
        return []
    return sorted(str(r["name"]) for r in roles if isinstance(r, dict) and r.get("name"))
