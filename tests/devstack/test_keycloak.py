"""A Keycloak that does not get ready in time is stopped by its own start, not left running."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from socle_devstack.keycloak import KeycloakServer
from socle_devstack.processes import free_port
from socle_devstack.stack import REALM_FILES
from tests.support.processes import processes_mentioning


def test_a_start_that_times_out_leaves_no_keycloak_behind(tmp_path: Path) -> None:
    server = KeycloakServer(
        instance_dir=tmp_path / "kc",
        port=free_port(),
        management_port=free_port(),
        realm_files=REALM_FILES,
        log_file=tmp_path / "keycloak.log",
    )
    with pytest.raises(TimeoutError, match="Keycloak not ready after 2s"):
        server.start(timeout=2)
    assert server.process is not None
    assert server.process.poll() is not None
    time.sleep(1)
    assert processes_mentioning(str(tmp_path)) == []
