"""What every ``socle-tenants`` command shares: connection arguments, credentials, output, exit status.

Apart from the commands (``domain/declarations/cli.py``: apply; ``domain/offboarding/cli.py``:
offboard, import) so that each imports it and none imports another's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

from socle_core import login
from socle_tenancy.domain.declarations.api import (
    DEFAULT_API,
    DEFAULT_CLIENT_ID,
    ApiError,
    ClientCredentials,
    Credentials,
    PersonSession,
    TenancyApi,
)

SECRET_ENV = "SOCLE_TENANTS_CLIENT_SECRET"
ISSUER_ENV = "SOCLE_TENANTS_ISSUER"
API_ENV = "SOCLE_TENANTS_API"
AUTH_ENV = "SOCLE_TENANTS_AUTH"


class UsageError(Exception):
    """Missing configuration: exit 2 with the message."""


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api", default=os.environ.get(API_ENV, DEFAULT_API), help=f"tenancy API URL (${API_ENV})")
    parser.add_argument(
        "--issuer",
        default=os.environ.get(ISSUER_ENV, login.DEFAULT_ISSUER),
        help=f"issuer URL of the Keycloak realm (${ISSUER_ENV}, default {login.DEFAULT_ISSUER}: the realm of make up)",
    )
    parser.add_argument(
        "--client-credentials",
        action="store_true",
        default=os.environ.get(AUTH_ENV) == "client-credentials",
        help=f"act as a confidential client (automation), not as the person of socle-login (${AUTH_ENV})",
    )
    parser.add_argument(
        "--client-id",
        default=DEFAULT_CLIENT_ID,
        help=f"with --client-credentials: the confidential client (secret in ${SECRET_ENV})",
    )


def connect(args: argparse.Namespace) -> TenancyApi:
    if not args.issuer:
        raise UsageError(
            f"indiquez l'URL de l'émetteur du realm avec --issuer ou {ISSUER_ENV} "
            "(en développement, lancez d'abord `make up` : elle est alors trouvée d'elle-même)"
        )
    if os.environ.get(AUTH_ENV, "session") not in ("session", "client-credentials"):
        raise UsageError(f"{AUTH_ENV} vaut 'session' (par défaut : la personne de socle-login) ou 'client-credentials'")
    credentials: Credentials = PersonSession()
    if args.client_credentials:
        secret = os.environ.get(SECRET_ENV)
        if not secret:
            raise UsageError(
                f"définissez {SECRET_ENV} (le secret du client {args.client_id!r}) "
                "(en développement, lancez d'abord `make up` : il est alors trouvé de lui-même)"
            )
        credentials = ClientCredentials(secret, args.client_id)
    return TenancyApi(args.api, args.issuer, credentials)


class Output:
    """Readable lines, or one JSON document on stdout with progress on stderr."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def line(self, text: str = "") -> None:
        print(text, file=sys.stderr if self.as_json else sys.stdout, flush=True)

    def document(self, value: dict[str, Any]) -> None:
        if self.as_json:
            print(json.dumps(value, indent=2, ensure_ascii=False, default=str), flush=True)


def run(coroutine: Any, out: Output) -> int:
    """Run a command; its exit status (2 for a usage error, 1 for a refusal of the platform)."""
    try:
        return int(asyncio.run(coroutine))
    except UsageError as exc:
        out.line(f"erreur : {exc}")
        return 2
    except ApiError as exc:
        out.line(f"erreur : {exc}")
        for error in exc.problem.get("errors", []) if isinstance(exc.problem.get("errors"), list) else []:
            out.line(f"  {error.get('field', '')} : {error.get('detail', error)}")
        out.document({"error": str(exc), "status": exc.status, "problem": exc.problem})
        return 1
