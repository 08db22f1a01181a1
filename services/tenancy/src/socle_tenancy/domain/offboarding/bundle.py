"""The export bundle of a leaving tenant, the deletion of its rows, and the proof.

Each service's database is reached with that service's **application** role (URLs from
``SOCLE_<SERVICE>_DATABASE_URL``) and every transaction first sets the tenant context, so
row-level security bounds what is read and deleted to that tenant; a ``tenant_id`` filter
is the first line (it also leaves out rows other tenants merely *share* with this one).

Bundle layout (``<export-dir>/<tenant key>/``)::

    manifest.json                  tenant, per-file format, row count, sha256; bundle_sha256
    SHA256SUMS                     ``sha256sum -c`` format; bundle_sha256 is its sha256
    registry/tenant.json           the registry row and onboarding state (from the API)
    keycloak/organization.json     the Keycloak organization, its domains and members
    <service>/<table>.json         every other tenant-owned table: a JSON array of rows
    timeseries/readings.csv        time series as CSV (header row, RFC 4180)

The bundle is written to a ``.partial`` folder and renamed once complete, so a crash never
leaves a bundle that looks finished.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from socle_tenancy.domain.offboarding.tables import (
    FOREIGN_KEYS_SQL,
    RETAINED_TABLES,
    TENANT_TABLES_SQL,
    deletion_order,
    quoted,
)

SERVICES = ("tenancy", "identity", "ingestion", "timeseries", "billing", "console")
#: Tables exported as CSV: the time series (everything else is JSON).
TIME_SERIES = frozenset({("timeseries", "readings")})
BUNDLE_FORMAT = "socle-offboarding-bundle/1"

Progress = Callable[[str], None]


class BundleError(Exception):
    """The bundle is missing, incomplete, or no longer matches the database."""


def database_urls(environ: Mapping[str, str], services: tuple[str, ...] = SERVICES) -> dict[str, str]:
    """Each service's application-role URL; all are needed, or the export would miss data."""
    urls = {s: environ.get(f"SOCLE_{s.upper()}_DATABASE_URL", "") for s in services}
    missing = [f"SOCLE_{s.upper()}_DATABASE_URL" for s, url in urls.items() if not url]
    if missing:
        raise BundleError(
            "the export must read every service's tables: set " + ", ".join(missing) + " (each service's "
            "application-role URL, as the services themselves get it)"
        )
    return {s: url.replace("postgresql+asyncpg://", "postgresql://", 1) for s, url in urls.items()}


@dataclass(frozen=True)
class TableRef:
    service: str
    table: str
    primary_key: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.service}.{self.table}"

    @property
    def format(self) -> str:
        return "csv" if (self.service, self.table) in TIME_SERIES else "json"

    @property
    def path(self) -> str:
        return f"{self.service}/{self.table}.{self.format}"

    @property
    def retained(self) -> bool:
        return self.table in RETAINED_TABLES

    @property
    def qualified(self) -> str:
        return quoted(self.service, self.table)


def _asyncpg_sql(sql: str) -> str:
    return sql.replace(":schema", "$1")


async def discover(connection: asyncpg.Connection, service: str) -> list[TableRef]:
    """The service's tenant-owned tables, in an order safe for deletion (children first)."""
    rows = await connection.fetch(_asyncpg_sql(TENANT_TABLES_SQL), service)
    keys = [(r["child"], r["parent"]) for r in await connection.fetch(_asyncpg_sql(FOREIGN_KEYS_SQL), service)]
    unreadable = [r["table"] for r in rows if not r["readable"]]
    if unreadable:
        raise BundleError(
            f"the {service} application role cannot read {', '.join(unreadable)}: the export would miss "
            "those rows (grant it SELECT; row-level security still limits it to the tenant)"
        )
    refs = {r["table"]: TableRef(service, r["table"], tuple(r["primary_key"])) for r in rows}
    return [refs[name] for name in deletion_order(sorted(refs), keys)]


@asynccontextmanager
async def tenant_transaction(
    url: str, tenant_id: uuid.UUID, *, isolation: str = "repeatable_read", readonly: bool = False
) -> AsyncIterator[asyncpg.Connection]:
    """One transaction of the service's app role in the tenant's context (transaction-local)."""
    connection = await asyncpg.connect(url, server_settings={"application_name": "socle-tenants-offboard"})
    try:
        async with connection.transaction(isolation=isolation, readonly=readonly):
            await connection.execute("SELECT set_config('app.tenant_id', $1, true)", str(tenant_id))
            yield connection
    finally:
        await connection.close()


def _order_by(ref: TableRef) -> str:
    columns = ref.primary_key or ("tenant_id",)
    return ", ".join('"' + c.replace('"', '""') + '"' for c in columns)


async def _export_table(connection: asyncpg.Connection, ref: TableRef, tenant_id: uuid.UUID, target: Path) -> int:
    target.parent.mkdir(parents=True, exist_ok=True)
    where = f"FROM {ref.qualified} t WHERE t.tenant_id = $1 ORDER BY {_order_by(ref)}"
    if ref.format == "csv":
        status = await connection.copy_from_query(
            f"SELECT * {where}",
            tenant_id,
            output=str(target),
            format="csv",
            header=True,
        )
        return int(status.split()[-1])
    rows = 0
    with target.open("w", encoding="utf-8") as out:
        out.write("[")
        async for record in connection.cursor(f"SELECT to_jsonb(t)::text {where}", tenant_id):
            out.write(("," if rows else "") + "\n" + record[0])
            rows += 1
        out.write("\n]\n")
    return rows


def _write_json(target: Path, value: Any) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str) + "\n")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _count_rows(path: Path, fmt: str) -> int:
    if fmt == "csv":
        with path.open(newline="", encoding="utf-8") as source:
            return max(sum(1 for _ in csv.reader(source)) - 1, 0)
    value = json.loads(path.read_text(encoding="utf-8"))
    return len(value) if isinstance(value, list) else 1


def _checksums(files: list[dict[str, Any]]) -> str:
    return "".join(f"{f['sha256']}  {f['path']}\n" for f in sorted(files, key=lambda f: f["path"]))


async def export_bundle(
    tenant: Mapping[str, Any],
    registry: Mapping[str, Any],
    identity: Mapping[str, Any],
    urls: Mapping[str, str],
    bundle_dir: Path,
    progress: Progress,
) -> dict[str, Any]:
    """Write the whole bundle next to ``bundle_dir``, verify it, then move it into place."""
    tenant_id = uuid.UUID(str(tenant["id"]))
    partial = bundle_dir.with_name(bundle_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    files: list[dict[str, Any]] = []

    def record(path: str, fmt: str, rows: int, **extra: Any) -> None:
        target = partial / path
        files.append(
            {"path": path, "format": fmt, "rows": rows, "sha256": sha256_of(target), "bytes": target.stat().st_size}
            | extra
        )

    _write_json(partial / "registry" / "tenant.json", registry)
    record("registry/tenant.json", "json", 1, source="tenancy API")
    _write_json(partial / "keycloak" / "organization.json", identity)
    record("keycloak/organization.json", "json", len(identity.get("members", [])), source="Keycloak")
    for service, url in urls.items():
        async with tenant_transaction(url, tenant_id, readonly=True) as connection:
            for ref in sorted(await discover(connection, service), key=lambda r: r.table):
                rows = await _export_table(connection, ref, tenant_id, partial / ref.path)
                record(ref.path, ref.format, rows, table=ref.name, retained=ref.retained)
                progress(f"exported {ref.name}: {rows} row(s)")
    manifest = {
        "format": BUNDLE_FORMAT,
        "tenant": {k: tenant.get(k) for k in ("id", "key", "kind", "name", "siren", "insee_code", "parent_id")},
        "status_at_export": tenant["status"],
        "exported_at": dt.datetime.now(dt.UTC).isoformat(),
        "files": sorted(files, key=lambda f: f["path"]),
        "retained_tables": sorted(RETAINED_TABLES),
        "bundle_sha256": hashlib.sha256(_checksums(files).encode()).hexdigest(),
    }
    (partial / "SHA256SUMS").write_text(_checksums(files))
    _write_json(partial / "manifest.json", manifest)
    verify_bundle(partial)
    _move_into_place(partial, bundle_dir)
    return manifest


def _move_into_place(partial: Path, bundle_dir: Path) -> None:
    """Replace a rehearsal's bundle only once the new one is complete and verified."""
    previous = bundle_dir.with_name(bundle_dir.name + ".previous")
    if bundle_dir.exists():
        shutil.rmtree(previous, ignore_errors=True)
        bundle_dir.rename(previous)
    partial.rename(bundle_dir)
    shutil.rmtree(previous, ignore_errors=True)


def verify_bundle(bundle_dir: Path) -> dict[str, Any]:
    """Re-read every file: its checksum and row count must be the manifest's."""
    try:
        manifest = json.loads((bundle_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BundleError(f"{bundle_dir} has no readable manifest.json: {exc}") from exc
    if manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{bundle_dir}/manifest.json is not a {BUNDLE_FORMAT} manifest")
    for entry in manifest["files"]:
        path = bundle_dir / entry["path"]
        if not path.is_file():
            raise BundleError(f"{entry['path']} is listed in the manifest but missing")
        if sha256_of(path) != entry["sha256"]:
            raise BundleError(f"{entry['path']} does not match its sha256 in the manifest")
        if (
            entry["path"].split("/")[0] not in ("registry", "keycloak")
            and _count_rows(path, entry["format"]) != entry["rows"]
        ):
            raise BundleError(f"{entry['path']} does not hold the {entry['rows']} row(s) the manifest says")
    sums = _checksums(manifest["files"])
    if (bundle_dir / "SHA256SUMS").read_text() != sums:
        raise BundleError("SHA256SUMS does not match the manifest")
    if hashlib.sha256(sums.encode()).hexdigest() != manifest["bundle_sha256"]:
        raise BundleError("bundle_sha256 does not match the files")
    return dict(manifest)


async def delete_rows(
    urls: Mapping[str, str], tenant_id: uuid.UUID, manifest: Mapping[str, Any], progress: Progress
) -> dict[str, int]:
    """Delete the tenant's rows service by service (one transaction each), children first.

    A table must hold exactly what the bundle holds (not deleted yet) or nothing (deleted
    by an earlier, interrupted run); anything else means rows arrived after the export,
    and the service's transaction is rolled back before it deletes anything.
    """
    exported = {f["table"]: f["rows"] for f in manifest["files"] if "table" in f}
    deleted: dict[str, int] = {}
    for service, url in urls.items():
        async with tenant_transaction(url, tenant_id) as connection:
            for ref in await discover(connection, service):
                if ref.retained:
                    continue
                current = await connection.fetchval(
                    f"SELECT count(*) FROM {ref.qualified} WHERE tenant_id = $1",  # noqa: S608
                    tenant_id,
                )
                expected = exported.get(ref.name, 0)
                if current not in (expected, 0):
                    raise BundleError(
                        f"{ref.name} holds {current} row(s) of the tenant but the bundle has {expected}: rows "
                        "arrived after the export. Stop the tenant's devices, move the bundle aside and run "
                        "again: a new bundle will hold what is left"
                    )
                status = await connection.execute(f"DELETE FROM {ref.qualified} WHERE tenant_id = $1", tenant_id)  # noqa: S608
                deleted[ref.name] = int(status.split()[-1])
                progress(f"deleted {ref.name}: {deleted[ref.name]} row(s)")
    return deleted


async def remaining_rows(urls: Mapping[str, str], tenant_id: uuid.UUID) -> dict[str, dict[str, Any]]:
    """The proof: per table, the tenant's rows counted in a fresh transaction after deletion."""
    proof: dict[str, dict[str, Any]] = {}
    for service, url in urls.items():
        async with tenant_transaction(url, tenant_id, readonly=True) as connection:
            for ref in sorted(await discover(connection, service), key=lambda r: r.table):
                count = await connection.fetchval(
                    f"SELECT count(*) FROM {ref.qualified} WHERE tenant_id = $1",  # noqa: S608
                    tenant_id,
                )
                proof[ref.name] = {"rows": int(count), "retained": ref.retained}
    return proof
