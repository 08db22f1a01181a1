"""A real Keycloak server from its Maven Central distribution, run on the machine's JDK.

The distribution (``org.keycloak:keycloak-quarkus-dist``, pinned) is fetched once with
``mvn dependency:copy`` into a cache and unpacked; each running instance gets its own copy
of it (Keycloak writes its build and its dev database inside its home), so ``make up`` and
a test run can coexist. The realm is imported at start from ``infra/keycloak/``.

Socle's own Keycloak providers (``infra/keycloak/providers/<name>/``, Maven projects) are built
with ``mvn -B -q package`` into a cache keyed by a hash of their sources, so a start rebuilds
them only after a change, and copied into each instance's ``providers/`` before it starts.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from socle_devstack.processes import http_ok, spawn, stop_group, wait_for

KEYCLOAK_VERSION = "26.4.7"
REALM = "socle"
ARTIFACT = f"org.keycloak:keycloak-quarkus-dist:{KEYCLOAK_VERSION}:tar.gz"
PROVIDERS_ROOT = Path(__file__).resolve().parents[4] / "infra" / "keycloak" / "providers"
PROVIDER_JAR_PREFIX = "socle-"


def cache_dir() -> Path:
    return Path(os.environ.get("SOCLE_CACHE_DIR", Path.home() / ".cache" / "socle"))


def ensure_distribution() -> Path:
    """The unpacked, pinned Keycloak distribution; downloaded from Maven Central once."""
    root = cache_dir() / "keycloak"
    home = root / f"keycloak-{KEYCLOAK_VERSION}"
    if (home / "bin" / "kc.sh").exists():
        return home
    root.mkdir(parents=True, exist_ok=True)
    archive = root / f"keycloak-quarkus-dist-{KEYCLOAK_VERSION}.tar.gz"
    if not archive.exists():
        if shutil.which("mvn") is None:
            raise RuntimeError("Maven (mvn) is needed to fetch Keycloak: apt-get install maven")
        print(f"fetching Keycloak {KEYCLOAK_VERSION} from Maven Central (once, ~160 MB)...", flush=True)
        subprocess.run(
            ["mvn", "-B", "-q", "dependency:copy", f"-Dartifact={ARTIFACT}", f"-DoutputDirectory={root}"],
            check=True,
        )
    partial = root / f".unpacking-{os.getpid()}"
    with tarfile.open(archive) as tar:
        tar.extractall(partial, filter="tar")
    (partial / f"keycloak-{KEYCLOAK_VERSION}").rename(home)
    shutil.rmtree(partial, ignore_errors=True)
    return home


def provider_projects() -> list[Path]:
    """Socle's Keycloak providers: every Maven project under ``infra/keycloak/providers/``."""
    return sorted(pom.parent for pom in PROVIDERS_ROOT.glob("*/pom.xml"))


def provider_sources_hash(project: Path) -> str:
    """A digest of everything a provider's build reads: file names and contents, ``target/`` aside."""
    digest = hashlib.sha256()
    for path in sorted(project.rglob("*")):
        relative = path.relative_to(project)
        if path.is_file() and relative.parts[0] != "target":
            digest.update(relative.as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:20]


def ensure_provider_jar(project: Path) -> Path:
    """The provider's jar, built by Maven when its sources changed since the last build.

    The build runs on a copy of the project under the cache, so the repository gets no
    ``target/`` and two stacks starting at once cannot trip on each other's half-built jar.
    """
    root = cache_dir() / "keycloak-providers"
    jar = root / f"{project.name}-{provider_sources_hash(project)}.jar"
    if jar.exists():
        return jar
    if shutil.which("mvn") is None:
        raise RuntimeError(f"Maven (mvn) is needed to build the Keycloak provider {project}: apt-get install maven")
    print(f"building the Keycloak provider {project.name} with Maven (only after its sources change)...", flush=True)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".build-{project.name}-", dir=root) as build:
        workdir = Path(build) / project.name
        shutil.copytree(project, workdir, ignore=shutil.ignore_patterns("target"))
        result = subprocess.run(
            ["mvn", "-B", "-q", "-Dstyle.color=never", "package"],
            cwd=workdir,
            capture_output=True,
            text=True,
            check=False,
        )
        built = sorted((workdir / "target").glob("*.jar"))
        if result.returncode != 0 or len(built) != 1:
            raise RuntimeError(
                f"building the Keycloak provider {project} failed (mvn -B -q package, "
                f"exit {result.returncode}):\n{result.stdout}{result.stderr}"
            )
        partial = root / f".{jar.name}.{os.getpid()}"
        shutil.copyfile(built[0], partial)
        partial.replace(jar)
    return jar


def install_providers(home: Path, projects: list[Path]) -> None:
    """Put exactly Socle's current provider jars in ``home/providers``.

    A jar whose bytes did not change is left untouched, so Keycloak sees no change and skips
    rebuilding itself; jars of providers that no longer exist are removed.
    """
    providers = home / "providers"
    providers.mkdir(parents=True, exist_ok=True)
    wanted = {f"{PROVIDER_JAR_PREFIX}{project.name}.jar": ensure_provider_jar(project) for project in projects}
    for installed in providers.glob(f"{PROVIDER_JAR_PREFIX}*.jar"):
        if installed.name not in wanted:
            installed.unlink()
    for name, jar in wanted.items():
        target = providers / name
        if not target.exists() or target.read_bytes() != jar.read_bytes():
            shutil.copyfile(jar, target)


def require_java() -> None:
    """Keycloak runs on the machine's JDK (17 or newer)."""
    if shutil.which("java") is None:
        raise RuntimeError("a JDK (17 or newer) is needed to run Keycloak: apt-get install openjdk-17-jre-headless")


@dataclass
class KeycloakServer:
    instance_dir: Path
    port: int
    management_port: int
    realm_files: list[Path]
    log_file: Path
    admin_user: str = "admin"
    admin_password: str = "dev-only-admin"
    env: dict[str, str] = field(default_factory=dict)
    providers: list[Path] = field(default_factory=provider_projects)
    process: subprocess.Popen[bytes] | None = None
    #: True when the realm files changed since this instance imported them: Keycloak imports a
    #: realm only into an instance that does not have it yet, so the running realm is the old one.
    realm_outdated: bool = False

    def realm_files_digest(self) -> str:
        digest = hashlib.sha256()
        for realm_file in sorted(self.realm_files):
            digest.update(realm_file.name.encode() + b"\0" + realm_file.read_bytes() + b"\0")
        return digest.hexdigest()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return f"{self.url}/realms/{REALM}"

    def start(self, timeout: float = 600) -> None:
        """Start and wait for the realm's discovery document.

        The wait is generous: on a loaded 2-core machine (several test sessions at once) a start
        with the realm imports was measured at 184 s; an unloaded one takes 11-30 s.
        """
        require_java()
        distribution = ensure_distribution()
        home = self.instance_dir / "keycloak"
        imported = self.instance_dir / "imported-realms.sha256"
        if not (home / "bin" / "kc.sh").exists():
            self.instance_dir.mkdir(parents=True, exist_ok=True)
            shutil.copytree(distribution, home, symlinks=True)
            imported.write_text(self.realm_files_digest() + "\n")
        elif imported.exists():
            self.realm_outdated = imported.read_text().strip() != self.realm_files_digest()
        install_providers(home, self.providers)
        import_dir = home / "data" / "import"
        import_dir.mkdir(parents=True, exist_ok=True)
        for realm_file in self.realm_files:
            shutil.copy(realm_file, import_dir / realm_file.name)
        self.process = spawn(
            [
                str(home / "bin" / "kc.sh"),
                "start-dev",
                f"--http-port={self.port}",
                "--http-host=127.0.0.1",
                f"--http-management-port={self.management_port}",
                "--health-enabled=true",
                "--import-realm",
                "--hostname-strict=false",
            ],
            self.log_file,
            env={
                "KC_BOOTSTRAP_ADMIN_USERNAME": self.admin_user,
                "KC_BOOTSTRAP_ADMIN_PASSWORD": self.admin_password,
                "JAVA_OPTS_APPEND": "-Xms256m -Xmx768m -XX:TieredStopAtLevel=1",
                **self.env,
            },
        )
        try:
            wait_for(
                http_ok(f"{self.issuer}/.well-known/openid-configuration"),
                timeout,
                "Keycloak",
                self.log_file,
                self.process,
            )
        except BaseException:
            self.stop()  # the caller never got a server to stop
            raise

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_group(self.process.pid, timeout=30, process=self.process)

    def admin_token(self) -> str:
        response = httpx.post(
            f"{self.url}/realms/master/protocol/openid-connect/token",
            data={
                "grant_type": "password",
                "client_id": "admin-cli",
                "username": self.admin_user,
                "password": self.admin_password,
            },
            timeout=10,
        )
        response.raise_for_status()
        return str(response.json()["access_token"])
