"""The local platform of ``make up`` as the command-line tools find it (development only).

While it runs, ``make up`` describes itself in ``.socle/stack.json``: its environment, the
supervisor's process id, each service's URL, the realm's issuer and where the database
listens (nothing secret: the file is readable by all). Its secrets stay in
``.socle/secrets.json`` (mode 0600). A tool run by hand (``socle-tenants``,
``socle-isolation-report``, ``python -m socle_tenancy.audit``) whose settings are absent from
its environment takes them from these two files, so it talks to the stack's own ports and not
to the defaults. It never does so for a setting present in the environment, nor when the
environment names an environment other than development.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from socle_core.provisioning import ServiceRoles

STATE_DIR_ENV = "SOCLE_STATE_DIR"
STACK_FILE = "stack.json"
SECRETS_FILE = "secrets.json"
FORMAT = 1


class LocalStackError(Exception):
    """A description of the local stack exists but cannot be used (stopped stack, unreadable file)."""


def database_url(service: str, kind: str, password: str, host: str, port: int, database: str) -> str:
    """The SQLAlchemy URL of a service's owner or application role (``kind``: ``owner`` or ``app``)."""
    roles = ServiceRoles.for_service(service)
    user = roles.owner if kind == "owner" else roles.app
    return f"postgresql+asyncpg://{user}:{password}@{host}:{port}/{database}"


def write_stack_file(
    state_dir: Path,
    *,
    supervisor_pid: int,
    issuer: str,
    service_urls: Mapping[str, str],
    database_host: str,
    database_port: int,
    database_name: str,
) -> Path:
    """Describe a started stack in ``state_dir/stack.json`` (written whole, then renamed)."""
    document = {
        "format": FORMAT,
        "environment": "development",
        "supervisor_pid": supervisor_pid,
        "issuer": issuer,
        "services": dict(service_urls),
        "database": {"host": database_host, "port": database_port, "name": database_name},
    }
    path = state_dir / STACK_FILE
    partial = path.with_name(f".{STACK_FILE}.{os.getpid()}")
    partial.write_text(json.dumps(document, indent=2) + "\n")
    partial.replace(path)
    return path


def process_alive(pid: int) -> bool:
    """True while the process runs (a zombie waiting for its parent counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def find_state_dir(environ: Mapping[str, str], start: Path | None = None) -> Path | None:
    """``$SOCLE_STATE_DIR``, else the first ``.socle/`` holding a ``stack.json`` from ``start`` upwards."""
    if environ.get(STATE_DIR_ENV):
        return Path(environ[STATE_DIR_ENV])
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / ".socle" / STACK_FILE).is_file():
            return folder / ".socle"
    return None


@dataclass(frozen=True)
class LocalStack:
    state_dir: Path
    issuer: str
    service_urls: dict[str, str]
    database_host: str
    database_port: int
    database_name: str
    secrets: dict[str, str]

    @classmethod
    def load(cls, state_dir: Path) -> LocalStack | None:
        """The stack described in ``state_dir``; None when none was started there."""
        path = state_dir / STACK_FILE
        if not path.is_file():
            return None
        try:
            document: dict[str, Any] = json.loads(path.read_text())
            secrets: dict[str, str] = json.loads((state_dir / SECRETS_FILE).read_text())
            database = document["database"]
            stack = cls(
                state_dir=state_dir,
                issuer=str(document["issuer"]),
                service_urls={str(k): str(v) for k, v in document["services"].items()},
                database_host=str(database["host"]),
                database_port=int(database["port"]),
                database_name=str(database["name"]),
                secrets=secrets,
            )
            supervisor = int(document["supervisor_pid"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise LocalStackError(f"{path} ou {state_dir / SECRETS_FILE} est illisible ({exc})") from exc
        if not process_alive(supervisor):
            raise LocalStackError(
                f"{path} décrit une plateforme locale qui ne tourne plus : relancez-la avec `make up` "
                "(ou `make down` pour effacer cette trace)"
            )
        return stack

    def database_url(self, service: str) -> str:
        """A service's application-role URL, the one the stack gives the service itself."""
        password = self.secrets[f"{service}_app"]
        return database_url(service, "app", password, self.database_host, self.database_port, self.database_name)

    def environment(self) -> dict[str, str]:
        """Every setting the command-line tools read, with the stack's values."""
        apis = {s: url for s, url in self.service_urls.items() if s != "console"}
        env = {f"SOCLE_{s.upper()}_DATABASE_URL": self.database_url(s) for s in self.service_urls}
        env.update(
            {
                "SOCLE_TENANCY_ENVIRONMENT": "development",
                "SOCLE_TENANCY_OIDC_ISSUER": self.issuer,
                "SOCLE_TENANCY_KEYCLOAK_CLIENT_SECRET": self.secrets["platform_client"],
                "SOCLE_TENANCY_REPORT_SIGNING_KEY": self.secrets["report_signing_key"],
                "SOCLE_TENANCY_ISOLATION_SERVICE_URLS": json.dumps(apis),
                "SOCLE_TENANTS_API": self.service_urls["tenancy"],
                "SOCLE_TENANTS_ISSUER": self.issuer,
                "SOCLE_TENANTS_CLIENT_SECRET": self.secrets["platform_client"],
                "SOCLE_LOGIN_ISSUER": self.issuer,
            }
        )
        return env


def _not_development(environ: Mapping[str, str]) -> bool:
    return any(
        key.upper().startswith("SOCLE_") and key.upper().endswith("_ENVIRONMENT") and value != "development"
        for key, value in environ.items()
    )


def fill_from_local_stack(names: Iterable[str], environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Set each of ``names`` absent from ``environ`` (default ``os.environ``) to the local stack's value.

    Returns the names it set (and says so on stderr); none when no local stack runs, or when the
    environment is not development's. Raises ``LocalStackError`` for a stack that stopped.
    """
    environ = os.environ if environ is None else environ
    missing = [name for name in names if not environ.get(name)]
    if not missing or _not_development(environ):
        return []
    state_dir = find_state_dir(environ)
    stack = LocalStack.load(state_dir) if state_dir is not None else None
    if stack is None:
        return []
    values = stack.environment()
    filled = [name for name in missing if name in values]
    for name in filled:
        environ[name] = values[name]
    if filled:
        print(
            f"[socle] plateforme locale de {state_dir} : {', '.join(filled)} pris de "
            f"{STACK_FILE} et {SECRETS_FILE} (absents de l'environnement)",
            file=sys.stderr,
            flush=True,
        )
    return filled


def describe_settings_error(error: ValidationError, prefix: str) -> str:
    """A settings class's refusal as what to set, one variable a line, in French."""
    lines = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"])
        variable = f"{prefix}{field.upper()}" if field else prefix + "*"
        reason = "manquant" if item["type"] == "missing" else item["msg"]
        lines.append(f"  {variable} : {reason}")
    return (
        "réglages manquants ou invalides :\n"
        + "\n".join(lines)
        + "\nDéfinissez-les dans l'environnement, ou, en développement, lancez d'abord `make up` "
        "depuis le dépôt : les outils trouvent alors la plateforme locale (.socle/stack.json) d'eux-mêmes."
    )
