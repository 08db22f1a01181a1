"""The export bundle of a leaving tenant, the deletion of its rows, and the proof.

Each service's database is reached with that service's **application** role (URLs from
``SOCLE_<SERVICE>_DATABASE_URL``) and every transaction first sets the tenant context, so
row-level security bounds what is read and deleted to that tenant; a ``tenant_id`` filter
is the first line (it also leaves out rows other tenants merely *share* with this one).

Bundle layout (``<export-dir>/<tenant key>-<UTC time>/``, a new folder for each export)::

    manifest.json                  tenant, per-file format, row count, sha256; bundle_sha256
    SHA256SUMS                     ``sha256sum -c`` format; bundle_sha256 is its sha256
    registry/tenant.json           the registry row and onboarding state (from the API)
    keycloak/organization.json     the Keycloak organization, its domains and members
    <service>/<table>.json         every other tenant-owned table: a JSON array of rows
    timeseries/readings.csv        time series as CSV (header row, RFC 4180)

The bundle is written to a ``.partial`` folder and renamed once complete, so a crash never
leaves a bundle that looks finished. It holds personal data (the members' e-mails): its
folders are 0700 and its files 0600 from the moment they are created, and an existing
bundle is never overwritten (each export gets its own time-stamped folder).

``restore_rows`` is the other half: it puts a verified bundle's rows back into a platform
(``socle-tenants import``), through the same application roles and tenant context.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import asyncpg

from socle_tenancy.domain.offboarding.tables import (
    AUDIT_TABLE,
    FOREIGN_KEYS_SQL,
    INSERTABLE_COLUMNS_SQL,
    RESTORED_REVOKED,
    RETAINED_TABLES,
    TENANT_TABLES_SQL,
    deletion_order,
    quoted,
)

SERVICES = ("tenancy", "identity", "ingestion", "timeseries", "billing", "console")
#: Tables exported as CSV: the time series (everything else is JSON).
TIME_SERIES = frozenset({("timeseries", "readings")})
BUNDLE_FORMAT = "socle-offboarding-bundle/1"
#: Who may read a bundle: its owner only (it holds members' e-mails).
PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600
#: Rows per INSERT when a bundle is restored.
RESTORE_BATCH = 1000

Progress = Callable[[str], None]


class BundleError(Exception):
    """The bundle is missing, incomplete, or no longer matches the database."""


def database_urls(environ: Mapping[str, str], services: tuple[str, ...] = SERVICES) -> dict[str, str]:
    """Each service's application-role URL; all are needed, or the export would miss data."""
    urls = {s: environ.get(f"SOCLE_{s.upper()}_DATABASE_URL", "") for s in services}
    missing = [f"SOCLE_{s.upper()}_DATABASE_URL" for s, url in urls.items() if not url]
    if missing:
        raise BundleError(
            "l'export doit lire les tables de chaque service : définissez " + ", ".join(missing) + " (l'URL du "
            "rôle applicatif de chaque service, telle que les services eux-mêmes la reçoivent)"
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
            f"le rôle applicatif de {service} ne peut pas lire {', '.join(unreadable)} : il manquerait ces lignes "
            "à l'export (accordez-lui SELECT ; la sécurité par ligne le limite toujours à la collectivité)"
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


def private_dir(path: Path) -> None:
    """A folder (and its missing parents) readable by its owner only; an existing one is left as it is."""
    if not path.parent.exists():
        private_dir(path.parent)
    try:
        path.mkdir(mode=PRIVATE_DIR)
    except FileExistsError:
        return
    path.chmod(PRIVATE_DIR)  # whatever the umask


def private_file(path: Path, mode: str = "w") -> IO[Any]:
    """A new file, 0600 from its creation; an existing one is never overwritten."""
    private_dir(path.parent)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError as exc:
        raise BundleError(f"{path} existe déjà : un lot n'est jamais écrasé") from exc
    return os.fdopen(descriptor, mode, **({} if "b" in mode else {"encoding": "utf-8"}))


async def _export_table(connection: asyncpg.Connection, ref: TableRef, tenant_id: uuid.UUID, target: Path) -> int:
    where = f"FROM {ref.qualified} t WHERE t.tenant_id = $1 ORDER BY {_order_by(ref)}"
    if ref.format == "csv":
        with private_file(target, "wb") as out:
            status = await connection.copy_from_query(
                f"SELECT * {where}", tenant_id, output=out, format="csv", header=True
            )
        return int(status.split()[-1])
    rows = 0
    with private_file(target) as out:
        out.write("[")
        async for record in connection.cursor(f"SELECT to_jsonb(t)::text {where}", tenant_id):
            out.write(("," if rows else "") + "\n" + record[0])
            rows += 1
        out.write("\n]\n")
    return rows


def write_json(target: Path, value: Any) -> None:
    with private_file(target) as out:
        out.write(json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str) + "\n")


def bundle_name(key: str, at: dt.datetime | None = None) -> str:
    """``<key>-<UTC time>``: each export its own folder, sortable by time."""
    return f"{key}-{(at or dt.datetime.now(dt.UTC)):%Y%m%dT%H%M%SZ}"


def bundles_of(export_dir: Path, tenant: Mapping[str, Any]) -> list[Path]:
    """The finished bundles of this tenant in the folder, oldest first."""
    found = []
    for candidate in sorted(export_dir.glob(f"{tenant['key']}-*/manifest.json")):
        try:
            manifest = json.loads(candidate.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if manifest.get("tenant", {}).get("id") == str(tenant["id"]):
            found.append(candidate.parent)
    return found


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
    _refuse_existing(bundle_dir)
    _refuse_existing(partial)
    private_dir(partial)
    files: list[dict[str, Any]] = []

    def record(path: str, fmt: str, rows: int, **extra: Any) -> None:
        target = partial / path
        files.append(
            {"path": path, "format": fmt, "rows": rows, "sha256": sha256_of(target), "bytes": target.stat().st_size}
            | extra
        )

    write_json(partial / "registry" / "tenant.json", registry)
    record("registry/tenant.json", "json", 1, source="tenancy API")
    write_json(partial / "keycloak" / "organization.json", identity)
    record("keycloak/organization.json", "json", len(identity.get("members", [])), source="Keycloak")
    for service, url in urls.items():
        async with tenant_transaction(url, tenant_id, readonly=True) as connection:
            for ref in sorted(await discover(connection, service), key=lambda r: r.table):
                rows = await _export_table(connection, ref, tenant_id, partial / ref.path)
                record(ref.path, ref.format, rows, table=ref.name, retained=ref.retained)
                progress(f"{ref.name} exportée : {rows} ligne(s)")
    manifest = {
        "format": BUNDLE_FORMAT,
        "tenant": {k: tenant.get(k) for k in ("id", "key", "kind", "name", "siren", "insee_code", "parent_id")},
        "status_at_export": tenant["status"],
        "exported_at": dt.datetime.now(dt.UTC).isoformat(),
        "files": sorted(files, key=lambda f: f["path"]),
        "retained_tables": sorted(RETAINED_TABLES),
        "bundle_sha256": hashlib.sha256(_checksums(files).encode()).hexdigest(),
    }
    with private_file(partial / "SHA256SUMS") as out:
        out.write(_checksums(files))
    write_json(partial / "manifest.json", manifest)
    verify_bundle(partial)
    _refuse_existing(bundle_dir)  # an empty folder there would be replaced by the rename
    partial.rename(bundle_dir)
    return manifest


def _refuse_existing(path: Path) -> None:
    if path.exists():
        raise BundleError(f"{path} existe déjà : un lot n'est jamais écrasé")


def verify_bundle(bundle_dir: Path, expected_sha256: str | None = None) -> dict[str, Any]:
    """Re-read every file: its checksum and row count must be the manifest's (and the bundle the expected one)."""
    try:
        manifest = json.loads((bundle_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BundleError(f"{bundle_dir} n'a pas de manifest.json lisible : {exc}") from exc
    if manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{bundle_dir}/manifest.json n'est pas un manifeste {BUNDLE_FORMAT}")
    for entry in manifest["files"]:
        path = bundle_dir / entry["path"]
        if not path.is_file():
            raise BundleError(f"{entry['path']} est listé dans le manifeste mais absent")
        if sha256_of(path) != entry["sha256"]:
            raise BundleError(f"{entry['path']} ne correspond pas à son sha256 du manifeste : le fichier a été modifié")
        if (
            entry["path"].split("/")[0] not in ("registry", "keycloak")
            and _count_rows(path, entry["format"]) != entry["rows"]
        ):
            raise BundleError(f"{entry['path']} ne contient pas les {entry['rows']} ligne(s) que dit le manifeste")
    sums = _checksums(manifest["files"])
    if (bundle_dir / "SHA256SUMS").read_text() != sums:
        raise BundleError("SHA256SUMS ne correspond pas au manifeste")
    if hashlib.sha256(sums.encode()).hexdigest() != manifest["bundle_sha256"]:
        raise BundleError("bundle_sha256 ne correspond pas aux fichiers")
    if expected_sha256 is not None and manifest["bundle_sha256"] != expected_sha256:
        raise BundleError(
            f"ce lot a pour sha256 {manifest['bundle_sha256']}, pas {expected_sha256} (celui de la preuve "
            "d'offboarding) : ce n'est pas le lot exporté"
        )
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
                        f"{ref.name} contient {current} ligne(s) de la collectivité mais le lot en a {expected} : "
                        "des lignes sont arrivées après l'export. Arrêtez les capteurs de la collectivité, mettez "
                        "le lot de côté et relancez : un nouveau lot contiendra ce qui reste"
                    )
                status = await connection.execute(f"DELETE FROM {ref.qualified} WHERE tenant_id = $1", tenant_id)  # noqa: S608
                deleted[ref.name] = int(status.split()[-1])
                progress(f"{ref.name} supprimée : {deleted[ref.name]} ligne(s)")
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


async def restore_audit_chain(connection: asyncpg.Connection, tenant_id: uuid.UUID, entries: list[Any]) -> int:
    """Put the tenant's exported hash chain back, verbatim: the one place an import writes the audit log.

    ``tenancy.restore_audit_entries`` checks every entry's hash and link, keeps the entries the
    platform already holds (they must be the same) and appends the others; returns how many.
    """
    return int(
        await connection.fetchval("SELECT tenancy.restore_audit_entries($1, $2::jsonb)", tenant_id, json.dumps(entries))
    )


def _json_rows(path: Path) -> list[Any]:
    return list(json.loads(path.read_text(encoding="utf-8")))


def _csv_rows(path: Path) -> Iterator[dict[str, str | None]]:
    """The CSV's rows by column; an empty field is NULL (the time series has no nullable text column)."""
    with path.open(newline="", encoding="utf-8") as source:
        for row in csv.DictReader(source):
            yield {k: (v if v != "" else None) for k, v in row.items()}


def _batches(rows: Any) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) == RESTORE_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


async def _insert_rows(connection: asyncpg.Connection, ref: TableRef, rows: Any) -> int:
    """Set-based INSERTs of JSON rows (a batch per statement); a row already there is left as it is."""
    columns = [r["name"] for r in await connection.fetch(INSERTABLE_COLUMNS_SQL, ref.qualified)]
    names = ", ".join('"' + c.replace('"', '""') + '"' for c in columns)
    sql = (
        f"INSERT INTO {ref.qualified} ({names}) SELECT {names} "  # noqa: S608 (catalogue names, quoted)
        f"FROM jsonb_populate_recordset(NULL::{ref.qualified}, $1::jsonb) ON CONFLICT DO NOTHING"
    )
    inserted = 0
    for batch in _batches(rows):
        inserted += int((await connection.execute(sql, json.dumps(batch))).split()[-1])
    return inserted


async def restore_rows(
    urls: Mapping[str, str], tenant_id: uuid.UUID, manifest: Mapping[str, Any], bundle_dir: Path, progress: Progress
) -> dict[str, dict[str, Any]]:
    """Every exported table's rows back into this platform, one transaction per service, parents first.

    A service whose tables already hold the bundle's rows (an earlier, interrupted run) is
    left as it is; a table that holds other rows of the tenant stops the import before it
    writes anything there. The audit chain is restored before anything else of the tenant.
    """
    exported = {f["table"]: f for f in manifest["files"] if "table" in f}
    plan: dict[str, list[TableRef]] = {}
    for service, url in urls.items():
        async with tenant_transaction(url, tenant_id, readonly=True) as connection:
            plan[service] = list(reversed(await discover(connection, service)))
    unknown = sorted(set(exported) - {ref.name for refs in plan.values() for ref in refs})
    if unknown:
        raise BundleError(f"ce lot contient des tables que cette plateforme n'a pas : {', '.join(unknown)}")
    restored: dict[str, dict[str, Any]] = {}
    for service, url in urls.items():
        refs = sorted(plan[service], key=lambda r: r.table != AUDIT_TABLE)  # the chain first, then parents first
        async with tenant_transaction(url, tenant_id) as connection:
            for ref in refs:
                entry = exported.get(ref.name)
                if entry is None:
                    continue
                path = bundle_dir / entry["path"]
                count_sql = f"SELECT count(*) FROM {ref.qualified} WHERE tenant_id = $1"  # noqa: S608
                before = int(await connection.fetchval(count_sql, tenant_id))
                if ref.table == AUDIT_TABLE:
                    inserted = await restore_audit_chain(connection, tenant_id, _json_rows(path))
                elif before == entry["rows"]:
                    inserted = 0  # restored by an earlier run
                elif before:
                    raise BundleError(
                        f"{ref.name} contient déjà {before} ligne(s) de la collectivité et le lot {entry['rows']} : "
                        "ces lignes ne viennent pas de ce lot, l'import s'arrête sans rien y écrire"
                    )
                else:
                    rows = _csv_rows(path) if ref.format == "csv" else _json_rows(path)
                    inserted = await _insert_rows(connection, ref, rows)
                if (ref.service, ref.table) in RESTORED_REVOKED and inserted:
                    column = RESTORED_REVOKED[(ref.service, ref.table)]
                    await connection.execute(
                        f'UPDATE {ref.qualified} SET "{column}" = now() WHERE tenant_id = $1 AND "{column}" IS NULL',  # noqa: S608
                        tenant_id,
                    )
                after = int(await connection.fetchval(count_sql, tenant_id))
                if after < entry["rows"] or (after != entry["rows"] and not ref.retained):
                    raise BundleError(f"{ref.name} : {after} ligne(s) après l'import, le lot en a {entry['rows']}")
                restored[ref.name] = {"rows": entry["rows"], "inserted": inserted, "now": after}
                progress(f"{ref.name} : {inserted} ligne(s) restaurée(s), {after} en tout")
    return restored
