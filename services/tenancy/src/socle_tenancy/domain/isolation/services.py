"""Running the isolation evidence report: catalogue, roles, live probes, audit chain, verdict.

The report connects only with the services' *application* roles (the ones the services
run as): the catalogue is readable by any role, and the probes must go through the exact
privileges a compromised or buggy service would have.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import create_async_engine

from socle_core.db import create_session_maker
from socle_tenancy.config import TenancySettings
from socle_tenancy.domain.isolation import signing
from socle_tenancy.domain.isolation.api_probes import probe_apis
from socle_tenancy.domain.isolation.catalogue import read_roles, read_tables
from socle_tenancy.domain.isolation.probes import ProbeTenant, finding, probe_service

SCHEMA_VERSION = "2"
SERVICES = ("tenancy", "identity", "ingestion", "timeseries", "billing", "console")
DEFAULT_SAMPLE = 4

REGISTRY_SQL = """
SELECT id, key FROM tenancy.tenants WHERE status <> 'deleted' ORDER BY kind DESC, key LIMIT $1
"""


@dataclass
class ReportConfig:
    """Where the report looks and how it signs; built from settings (API) or the environment (CLI)."""

    database_urls: dict[str, str]
    signing_key: SecretStr | None
    environment: str = "development"
    service_urls: dict[str, str] = field(default_factory=dict)
    oidc_issuer: str | None = None
    keycloak_client_id: str = "socle-platform"
    keycloak_client_secret: SecretStr | None = None
    sample_size: int = DEFAULT_SAMPLE
    schemas: tuple[str, ...] = SERVICES

    @classmethod
    def from_settings(cls, settings: TenancySettings, sample_size: int = DEFAULT_SAMPLE) -> ReportConfig:
        urls = {s: u.get_secret_value() for s, u in settings.isolation_database_urls.items()}
        urls.setdefault("tenancy", settings.database_url.get_secret_value())
        return cls(
            database_urls=urls,
            signing_key=settings.report_signing_key,
            environment=settings.environment.value,
            service_urls=dict(settings.isolation_service_urls),
            oidc_issuer=settings.oidc_issuer,
            keycloak_client_id=settings.keycloak_client_id,
            keycloak_client_secret=settings.keycloak_client_secret,
            sample_size=sample_size,
        )

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> ReportConfig:
        """``SOCLE_<SERVICE>_DATABASE_URL`` of every service, as ``make up`` gives the services."""
        env = os.environ if env is None else env
        urls = {
            s: env[f"SOCLE_{s.upper()}_DATABASE_URL"] for s in SERVICES if env.get(f"SOCLE_{s.upper()}_DATABASE_URL")
        }
        key = env.get("SOCLE_TENANCY_REPORT_SIGNING_KEY")
        secret = env.get("SOCLE_TENANCY_KEYCLOAK_CLIENT_SECRET")
        values: dict[str, Any] = {
            "database_urls": urls,
            "signing_key": SecretStr(key) if key else None,
            "environment": env.get("SOCLE_TENANCY_ENVIRONMENT", "development"),
            "oidc_issuer": env.get("SOCLE_TENANCY_OIDC_ISSUER"),
            "keycloak_client_id": env.get("SOCLE_TENANCY_KEYCLOAK_CLIENT_ID", "socle-platform"),
            "keycloak_client_secret": SecretStr(secret) if secret else None,
        }
        values.update(overrides)
        return cls(**values)


def dsn(url: str) -> str:
    """asyncpg's DSN of a SQLAlchemy URL (``postgresql+asyncpg://`` → ``postgresql://``)."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _verify_audit_chain(config: ReportConfig) -> dict[str, Any]:
    """The audit log's hash-chain verification; the one place the report depends on it.

    The audit module is built alongside this report: where it is absent (or has no
    ``services.verify``), the check says "not available" instead of failing or pretending.
    """
    try:
        from socle_tenancy.domain.audit import services as audit
    except ImportError:
        return {
            "status": "not available",
            "detail": "le module du journal d'audit (socle_tenancy.domain.audit) est absent",
        }
    verify = getattr(audit, "verify", None)
    url = config.database_urls.get("tenancy")
    if verify is None or url is None:
        return {
            "status": "not available",
            "detail": "pas de fonction de vérification du journal d'audit ou pas d'URL de base de données de tenancy",
        }
    engine = create_async_engine(url, pool_size=1, max_overflow=0)
    try:
        verdict = await verify(create_session_maker(engine))
    finally:
        await engine.dispose()
    return {
        "status": "verified" if verdict.ok else "broken",
        "chains": verdict.chains,
        "entries": verdict.entries,
        "findings": [
            {"tenant_id": str(f.tenant_id), "seq": f.seq, "kind": f.kind, "detail": f.detail} for f in verdict.findings
        ],
        "detail": f"{verdict.chains} chaîne(s), {verdict.entries} entrée(s), {len(verdict.findings)} constat(s)",
    }


async def _sample(config: ReportConfig) -> list[ProbeTenant]:
    """Up to N tenants of the registry, padded with synthetic tenants so there is always a pair."""
    tenants: list[ProbeTenant] = []
    if "tenancy" in config.database_urls:
        connection = await asyncpg.connect(dsn(config.database_urls["tenancy"]))
        try:
            rows = await connection.fetch(REGISTRY_SQL, config.sample_size)
        finally:
            await connection.close()
        tenants = [ProbeTenant(r["id"], r["key"], "registry") for r in rows]
    while len(tenants) < 2:
        tenants.append(ProbeTenant(uuid.uuid4(), f"isolation-probe-{uuid.uuid4().hex[:8]}", "synthetic"))
    return tenants


async def _catalogue(config: ReportConfig) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    url = config.database_urls.get("tenancy") or next(iter(config.database_urls.values()))
    connection = await asyncpg.connect(dsn(url))
    try:
        # An empty search path makes pg_get_expr schema-qualify every name it prints.
        await connection.execute("SET search_path = pg_catalog")
        tables = await read_tables(connection, list(config.schemas))
        roles = await read_roles(connection)
        database = {
            "name": await connection.fetchval("SELECT current_database()"),
            "server_version": await connection.fetchval("SHOW server_version"),
        }
    finally:
        await connection.close()
    return database, tables, roles


async def run_report(config: ReportConfig) -> dict[str, Any]:
    """Run every check and return the signed report (raises if it cannot be signed)."""
    key = signing.check_key(config.signing_key, config.environment)
    if not config.database_urls:
        raise ValueError(
            "aucune URL de base de données des rôles applicatifs : définissez SOCLE_<SERVICE>_DATABASE_URL pour "
            "chaque service"
        )
    started = dt.datetime.now(dt.UTC)
    database, tables, roles = await _catalogue(config)
    tenants = await _sample(config)
    services, connections = [], []
    for service in config.schemas:
        own = [t for t in tables if t["schema"] == service]
        url = config.database_urls.get(service)
        expected = f"socle_{service}_app"
        if url is None:
            services.append(
                {
                    "service": service,
                    "status": "not run",
                    "reason": f"pas d'URL de base de données (SOCLE_{service.upper()}_DATABASE_URL)",
                    "tables": [],
                    "violations": [],
                }
            )
            continue
        result = await probe_service(dsn(url), service, own, tenants)
        result["status"] = "ran"
        result["violations"] = []
        if result["connected_as"] != expected:
            result["violations"].append(
                finding(
                    f"se connecte en tant que {result['connected_as']}, pas avec le rôle applicatif {expected}",
                    request="SELECT current_user",
                    evidence={"current_user": result["connected_as"]},
                )
            )
        connections.append(result["connected_as"])
        services.append(result)
    api = await probe_apis(
        service_urls=config.service_urls,
        tenants=tenants,
        issuer=config.oidc_issuer,
        client_id=config.keycloak_client_id,
        secret=config.keycloak_client_secret,
    )
    audit = await _verify_audit_chain(config)
    violations = _violations(tables, roles, services, api, audit)
    gaps = _gaps(services, api)
    report = {
        "schema_version": SCHEMA_VERSION,
        "report_id": str(uuid.uuid4()),
        "generated_at": started.isoformat(),
        "finished_at": dt.datetime.now(dt.UTC).isoformat(),
        "environment": config.environment,
        "database": database,
        "sample": {
            "tenants": [{"id": str(t.id), "key": t.key, "source": t.source} for t in tenants],
            "ordered_pairs": len(tenants) * (len(tenants) - 1),
        },
        "catalogue": {"schemas": list(config.schemas), "tables": tables},
        "roles": roles,
        "database_probes": {"services": services},
        "api_probes": api,
        "audit_chain": audit,
        "counts": _counts(tables, roles, services, api, violations, gaps),
        "violations": violations,
        "gaps": gaps,
        "verdict": "fail" if violations else ("incomplete" if gaps else "pass"),
    }
    return signing.sign(report, key)


def _violation(check: str, subject: str, item: str | dict[str, Any]) -> dict[str, Any]:
    """A violation of the report: a catalogue fact (a sentence) or a probe's finding (who, how, evidence)."""
    found = finding(item) if isinstance(item, str) else item
    return {"check": check, "subject": subject, **found}


def _violations(
    tables: list[dict[str, Any]],
    roles: dict[str, Any],
    services: list[dict[str, Any]],
    api: dict[str, Any],
    audit: dict[str, Any],
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for table in tables:
        found += [_violation("catalogue", f"{table['schema']}.{table['table']}", v) for v in table["violations"]]
    for role in roles["application_roles"]:
        found += [_violation("roles", role["name"], v) for v in role["violations"]]
    for service in services:
        found += [_violation("database_probe", service["service"], v) for v in service["violations"]]
        for table in service["tables"]:
            subject = f"{table['schema']}.{table['table']}"
            found += [_violation("database_probe", subject, v) for v in table["violations"]]
    for probe in api.get("probes", []):
        subject = f"{probe['service']} {probe['method']} {probe['path']}"
        found += [_violation("api_probe", subject, v) for v in probe.get("violations", [])]
    for service, routes in api.get("unclassified", {}).items():
        found += [
            _violation(
                "api_routes",
                f"{service} {r}",
                "route servie sans règle d'accès déclarée dans ce paquet du service (socle_core.access) : "
                "personne n'a encore dit comment elle touche aux données des collectivités",
            )
            for r in routes
        ]
    if audit["status"] == "broken":
        found += [
            _violation("audit_chain", f"chaîne d'audit de {f['tenant_id']}", f"{f['kind']} : {f['detail']}")
            for f in audit["findings"]
        ] or [_violation("audit_chain", "journal d'audit de tenancy", str(audit.get("detail")))]
    return found


def _gaps(services: list[dict[str, Any]], api: dict[str, Any]) -> list[dict[str, str]]:
    """What the report could not check, with why: no violation seen there does not mean none exists."""
    gaps = [
        {"check": "database_probe", "subject": s["service"], "reason": s["reason"]}
        for s in services
        if s["status"] != "ran"
    ]
    gaps += [
        {"check": "api_probe", "subject": row["route"], "reason": row["reason"]}
        for row in api.get("coverage", [])
        if row["status"] == "gap"
    ]
    return gaps


def _counts(
    tables: list[dict[str, Any]],
    roles: dict[str, Any],
    services: list[dict[str, Any]],
    api: dict[str, Any],
    violations: list[dict[str, Any]],
    gaps: list[dict[str, str]],
) -> dict[str, int]:
    probed = [t for s in services for t in s["tables"]]
    pairs = [p for t in probed for p in t["pairs"]]
    api_probes = api.get("probes", [])
    return {
        "tenant_owned_tables": len(tables),
        "policies": sum(len(t["policies"]) for t in tables),
        "application_roles": len(roles["application_roles"]),
        "tables_probed": len(probed),
        "probe_rows_inserted": sum(t["probe_rows_inserted"] for t in probed),
        "database_pair_probes": len(pairs),
        "database_pair_probes_refused": sum(p["outcome"] == "refused" for p in pairs),
        "database_pair_probes_vacuous": sum(p["outcome"] == "vacuous" for p in pairs),
        "database_statements_refused": sum(
            (p["select_visible"] - p["shared_visible"] == 0)
            + (p["update"]["affected"] == 0)
            + (p["delete"]["affected"] == 0)
            + bool(p["insert"]["refused"])
            for p in pairs
        ),
        "api_probes": sum(p["outcome"] != "skipped" for p in api_probes),
        "api_probes_refused": sum(p["outcome"] == "refused" for p in api_probes),
        "api_probes_skipped": sum(p["outcome"] == "skipped" for p in api_probes),
        "violations": len(violations),
        "gaps": len(gaps),
    }
