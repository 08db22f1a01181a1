"""The local stack's secrets on disk: the superuser's password, the secrets file, the logs.

A real PostgreSQL is set up the way ``make up`` does it, in a scratch folder; under root (as
here) it runs as its own system user, which must still reach its files while every other
account, checked as ``nobody``, reads nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from socle_devstack.postgres import RUN_AS, debian_bin_dir
from socle_devstack.processes import free_port
from socle_devstack.stack import REPORT_SIGNING_KEY, Credentials, private_state_dir, start_postgres
from socle_tenancy.domain.isolation import signing


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _readable_by_nobody(path: Path) -> bool:
    """Whether the unprivileged ``nobody`` account can read ``path`` (only root can ask)."""
    return subprocess.run(["runuser", "-u", "nobody", "--", "cat", str(path)], capture_output=True).returncode == 0


@pytest.fixture
def scratch() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="socle-secrets-"))
    root.chmod(0o755)  # like a checkout: anyone may pass through to the stack's folder
    yield root / ".socle"
    shutil.rmtree(root, ignore_errors=True)


async def _accepts(dsn: str) -> bool:
    connection = await asyncpg.connect(dsn)
    try:
        return bool(await connection.fetchval("SELECT true"))
    finally:
        await connection.close()


def test_the_superuser_password_and_the_stack_folder_are_private(scratch: Path) -> None:
    private_state_dir(scratch)
    server = start_postgres(scratch, free_port(), "debian" if debian_bin_dir() else "embedded", durable=False)
    try:
        assert asyncio.run(_accepts(server.admin_dsn))  # the server still reaches everything it needs
        password_file = scratch / "postgres" / ".data.superuser"
        assert password_file.read_text() == server.superuser_password
        for path in (password_file, scratch / "logs" / "postgres.log"):
            assert _mode(path) == 0o600, f"{path}: {oct(_mode(path))}"
        assert _mode(scratch / "postgres") == 0o700
        for directory in (scratch, scratch / "logs"):
            assert _mode(directory) & 0o007 == 0, f"{directory}: {oct(_mode(directory))}"
        if os.geteuid() == 0:
            assert password_file.owner() == RUN_AS
            assert not _readable_by_nobody(password_file)
            assert not _readable_by_nobody(scratch / "logs" / "postgres.log")
    finally:
        server.stop()

    # A server set up before the files were private: its next start tightens them.
    password_file.chmod(0o644)
    server.start()
    try:
        assert _mode(password_file) == 0o600
    finally:
        server.stop()


def test_the_secrets_file_is_readable_by_its_owner_only(scratch: Path) -> None:
    private_state_dir(scratch)
    path = scratch / "secrets.json"
    created = Credentials.load_or_create(path)
    assert _mode(path) == 0o600
    path.chmod(0o644)  # written by an older version, or copied around
    assert Credentials.load_or_create(path).passwords == created.passwords
    assert _mode(path) == 0o600
    assert json.loads(path.read_text()) == created.passwords
    assert _mode(scratch) == 0o700
    if os.geteuid() == 0:
        assert not _readable_by_nobody(path)


def test_a_new_stack_gets_a_development_ed25519_report_key(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    credentials = Credentials.load_or_create(path)
    key = credentials[REPORT_SIGNING_KEY]
    assert key.startswith("dev-only-")
    signing.check_key(signing.SecretStr(key), "development")  # the local stack signs with it
    with pytest.raises(signing.SigningKeyError, match="refusée quand environment=production"):
        signing.check_key(signing.SecretStr(key), "production")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Credentials.load_or_create(path)[REPORT_SIGNING_KEY] == key  # kept across starts


def test_a_stack_of_the_hmac_era_keeps_its_secrets_and_gets_an_ed25519_key(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    old = {name: f"dev-only-{name}" for name in Credentials.names()}
    old[REPORT_SIGNING_KEY] = "dev-only-" + "k" * 48  # the former HMAC secret
    path.write_text(json.dumps(old))
    credentials = Credentials.load_or_create(path)
    assert {n: credentials[n] for n in old if n != REPORT_SIGNING_KEY} == {
        n: v for n, v in old.items() if n != REPORT_SIGNING_KEY
    }
    signing.private_key_from_pem(credentials[REPORT_SIGNING_KEY])
    assert json.loads(path.read_text())[REPORT_SIGNING_KEY] == credentials[REPORT_SIGNING_KEY]
