"""Rebuild the package's ``data/`` from a published ``@etalab/decoupage-administratif``.

    python -m socle_reference.refresh [--version X] [--dry-run]

Runs once a year, when DGCL and INSEE publish the new EPCI perimeters and populations:
it fetches the package with ``npm pack`` (the registry's integrity hash comes with it),
rebuilds the extract, prints what changed, and writes the extract, ``SOURCE.json`` and the
package's licence. Records with invalid SIRENs or INSEE codes are reported and, unless
``--allow-issues`` is given, nothing is written.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TextIO

from .catalogue import EXTRACT_FILENAME, SOURCE_FILENAME, ReferenceDataError, reference_dir
from .extract import (
    DATA_FILES,
    BuildResult,
    build_extract,
    diff_extracts,
    extract_bytes,
    read_extract,
)

PACKAGE: Final = "@etalab/decoupage-administratif"
LICENSE_FILENAME: Final = "LICENSE-decoupage-administratif"
DATA_LICENCE: Final = "Licence Ouverte / Open Licence (Etalab), per the package README"

# The package does not say which census its "population" field comes from in its data;
# its README and build scripts do. Checked by hand for each version, so the allocation
# statements can cite the exact legal population. Add a line when adopting a new version.
KNOWN_POPULATION_REFERENCES: Final[Mapping[str, Mapping[str, Any]]] = {
    "6.0.0": {
        "figure": "population_municipale",
        "label": "Population municipale (INSEE, populations légales)",
        "millesime": 2023,
        "in_force_from": "2026-01-01",
        "source_url": "https://www.insee.fr/fr/statistiques/8680726",
        "notes": [
            "communes.json 'population' is the PMUN column of the INSEE 'populations "
            "légales 2023' file (package build/population.js, commit 'Update pop 2023')",
            "Mayotte (976): INSEE 2017 census figures, as the package README states",
            "Paris, Marseille, Lyon: sum of their arrondissements municipaux",
            "EPCI dgcl_population_* are DGCL totals from epcicom (columns pmun_2025/"
            "ptot_2025), an earlier millésime; Socle's EPCI population is the sum of its "
            "communes' population municipale",
        ],
    },
}


class RefreshError(RuntimeError):
    """The refresh cannot proceed; the message says what to do."""


# -- fetching ------------------------------------------------------------------------


def npm_pack(version: str, workdir: Path) -> tuple[Path, dict[str, Any]]:
    """Download the package tarball with npm; returns it and npm's metadata (integrity)."""
    npm = shutil.which("npm")
    if npm is None:
        raise RefreshError(
            "npm is not on PATH: install Node.js/npm, or download the tarball elsewhere and pass it with --tarball"
        )
    spec = f"{PACKAGE}@{version}"
    try:
        completed = subprocess.run(
            [npm, "pack", spec, "--json"],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RefreshError(f"`npm pack {spec}` timed out after {exc.timeout}s") from exc
    if completed.returncode != 0:
        tail = "\n".join(completed.stderr.strip().splitlines()[-10:])
        raise RefreshError(f"`npm pack {spec}` failed ({completed.returncode}):\n{tail}")
    info: dict[str, Any] = {}
    try:
        parsed = json.loads(completed.stdout)
        if isinstance(parsed, list) and parsed:
            info = dict(parsed[0])
    except ValueError:
        pass  # older npm: plain filename on stdout; integrity is computed below anyway
    tarballs = sorted(workdir.glob("*.tgz"))
    if len(tarballs) != 1:
        raise RefreshError(f"`npm pack {spec}` left {len(tarballs)} tarballs in {workdir}")
    return tarballs[0], info


def unpack(tarball: Path, target: Path) -> Path:
    """Extract only the files we read, by exact name (no path from the archive is trusted)."""
    wanted = ["package/package.json", "package/LICENSE", "package/README.md"]
    wanted += [f"package/data/{name}" for name in DATA_FILES]
    package_dir = target / "package"
    (package_dir / "data").mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball, "r:gz") as archive:
        names = set(archive.getnames())
        for name in wanted:
            if name not in names:
                continue
            member = archive.getmember(name)
            handle = archive.extractfile(member) if member.isfile() else None
            if handle is None:
                continue
            with handle:
                (target / name).write_bytes(handle.read())
    return package_dir


# -- provenance ----------------------------------------------------------------------


def sri_sha512(path: Path) -> str:
    """Subresource-integrity string, the form npm's ``dist.integrity`` uses."""
    digest = hashlib.sha512(path.read_bytes()).digest()
    return "sha512-" + base64.b64encode(digest).decode("ascii")


def _sha1(path: Path) -> str:
    """npm's legacy ``shasum`` field, recorded for cross-checking, not for security."""
    return hashlib.sha1(path.read_bytes(), usedforsecurity=False).hexdigest()


def population_reference(version: str, readme: str) -> tuple[dict[str, Any], bool]:
    """The population figure of this version; ``False`` if it still needs a human check."""
    known = KNOWN_POPULATION_REFERENCES.get(version)
    if known is not None:
        return dict(known), True
    match = re.search(r"\[Population l[ée]gale\]\((https://[^)\s]+)\)", readme, re.IGNORECASE)
    return (
        {
            "figure": "population_municipale",
            "label": "Population municipale (INSEE, populations légales)",
            "millesime": None,
            "in_force_from": None,
            "source_url": match.group(1) if match else None,
            "notes": [
                f"millésime not checked for {PACKAGE} {version}: read the package README and "
                "build/population.js, then add it to KNOWN_POPULATION_REFERENCES"
            ],
        },
        False,
    )


def source_metadata(
    package_dir: Path,
    tarball: Path,
    npm_info: Mapping[str, Any],
    fetched_at: datetime,
) -> tuple[dict[str, Any], bool]:
    """SOURCE metadata; the flag says whether the population millésime is known."""
    manifest_path = package_dir / "package.json"
    manifest = json.loads(manifest_path.read_text("utf-8")) if manifest_path.is_file() else {}
    version = str(manifest.get("version") or npm_info.get("version") or "unknown")
    readme_path = package_dir / "README.md"
    readme = readme_path.read_text("utf-8") if readme_path.is_file() else ""
    integrity = sri_sha512(tarball)
    if npm_info.get("integrity") and npm_info["integrity"] != integrity:
        raise RefreshError(f"tarball integrity {integrity} differs from npm's {npm_info['integrity']}")
    population, known = population_reference(version, readme)
    return (
        {
            "package": str(manifest.get("name") or PACKAGE),
            "version": version,
            "repository": manifest.get("repository"),
            "tarball": tarball.name,
            "integrity": integrity,
            "shasum": npm_info.get("shasum") or _sha1(tarball),
            "fetched_at": fetched_at.isoformat(timespec="seconds"),
            "licence": str(manifest.get("license") or "MIT"),
            "data_licence": DATA_LICENCE,
            "population": population,
            "epci_source": "DGCL, liste et composition des EPCI à fiscalité propre",
            "commune_source": "INSEE, Code officiel géographique (communes actuelles)",
        },
        known,
    )


# -- the command ---------------------------------------------------------------------


def summary(result: BuildResult, old: Mapping[str, Any] | None) -> list[str]:
    """What the build found and what changed against the extract on disk."""
    source = result.extract["source"]
    population = sum(c["population"] or 0 for c in result.extract["communes"])
    lines = [
        f"{source['package']} {source['version']} ({source['integrity'][:27]}...)",
        f"EPCIs: {result.epci_count}   member communes: {result.commune_count}   population municipale: {population:,}",
    ]
    kinds = Counter(e["kind"] for e in result.extract["epcis"])
    lines.append("EPCI kinds: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
    for issue in result.issues:
        lines.append(str(issue))
    if old is None:
        lines.append("no extract on disk yet: everything is new")
    else:
        before = old.get("source", {})
        lines.append(f"changes since {before.get('package')} {before.get('version')}:")
        lines += ["  " + line for line in diff_extracts(old, result.extract).lines()]
    return lines


def write_outputs(result: BuildResult, package_dir: Path, output_dir: Path) -> dict[str, Any]:
    """Write extract, SOURCE.json and licence; returns the SOURCE content written."""
    output_dir.mkdir(parents=True, exist_ok=True)
    payload = extract_bytes(result.extract)
    (output_dir / EXTRACT_FILENAME).write_bytes(payload)
    source = dict(result.extract["source"])
    source["extract"] = {
        "file": EXTRACT_FILENAME,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "bytes": len(payload),
        "epcis": result.epci_count,
        "communes": result.commune_count,
        "commune_types_kept": ["commune-actuelle"],
    }
    (output_dir / SOURCE_FILENAME).write_text(json.dumps(source, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    licence = package_dir / "LICENSE"
    if licence.is_file():
        shutil.copyfile(licence, output_dir / LICENSE_FILENAME)
    return source


def refresh(
    *,
    version: str,
    output_dir: Path,
    dry_run: bool,
    allow_issues: bool,
    tarball: Path | None = None,
    out: TextIO | None = None,
) -> int:
    """Fetch, build, report, write. Returns the process exit code."""
    out = out or sys.stdout
    with tempfile.TemporaryDirectory(prefix="socle-reference-") as tmp:
        workdir = Path(tmp)
        if tarball is None:
            tgz, npm_info = npm_pack(version, workdir)
        else:
            if not tarball.is_file():
                raise RefreshError(f"--tarball {tarball}: no such file")
            tgz, npm_info = tarball, {}
        package_dir = unpack(tgz, workdir)
        source, known = source_metadata(package_dir, tgz, npm_info, datetime.now(UTC))
        if tarball is None and version != "latest" and source["version"] != version:
            raise RefreshError(f"asked for {version}, npm returned {source['version']}")
        result = build_extract(package_dir, source)
        old = read_extract(output_dir / EXTRACT_FILENAME)
        for line in summary(result, old):
            print(line, file=out)
        if not known:
            print(
                f"WARNING: population millésime of {source['version']} is not known to this "
                "tool; SOURCE.json records it as null until KNOWN_POPULATION_REFERENCES is "
                "updated",
                file=out,
            )
        if result.errors and not allow_issues:
            print(
                f"{len(result.errors)} invalid records: nothing written "
                "(--allow-issues writes the extract without them)",
                file=out,
            )
            return 2
        if dry_run:
            print(f"dry run: {output_dir} left unchanged", file=out)
            return 0
        written = write_outputs(result, package_dir, output_dir)
        print(
            f"wrote {output_dir / EXTRACT_FILENAME} ({written['extract']['bytes']:,} bytes), "
            f"{SOURCE_FILENAME}, {LICENSE_FILENAME}",
            file=out,
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m socle_reference.refresh",
        description=f"Rebuild the reference extract (socle_reference/data/) from the npm package {PACKAGE}.",
    )
    parser.add_argument("--version", default="latest", help="package version (default: latest)")
    parser.add_argument("--dry-run", action="store_true", help="report, write nothing")
    parser.add_argument("--tarball", type=Path, help="use this already downloaded .tgz instead of npm pack")
    parser.add_argument("--output-dir", type=Path, help="where to write (default: the package's data/)")
    parser.add_argument(
        "--allow-issues",
        action="store_true",
        help="write even if some records had invalid SIREN/INSEE codes (they are left out)",
    )
    args = parser.parse_args(argv)
    try:
        output_dir = args.output_dir or reference_dir()
        return refresh(
            version=args.version,
            output_dir=output_dir,
            dry_run=args.dry_run,
            allow_issues=args.allow_issues,
            tarball=args.tarball,
        )
    except (RefreshError, ReferenceDataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
