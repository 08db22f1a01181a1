"""How the command-line tools find the running ``make up`` stack, and what they say when they cannot.

The files are the ones ``make up`` writes (``socle_core.local_stack.write_stack_file`` and the
stack's ``secrets.json``); the supervisor is a real process (this one, or one that has exited).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from socle_core.local_stack import (
    LocalStackError,
    describe_settings_error,
    fill_from_local_stack,
    find_state_dir,
    write_stack_file,
)
from socle_devstack.stack import SERVICES, Credentials
from socle_tenancy.config import TenancySettings
from tests.support.local_stack import NO_LOCAL_STACK

PORTS = {s: 18300 + i for i, s in enumerate(SERVICES)}
ISSUER = "http://127.0.0.1:18380/realms/socle"


def _stack(state: Path, supervisor: int) -> Credentials:
    credentials = Credentials.load_or_create(state / "secrets.json")
    write_stack_file(
        state,
        supervisor_pid=supervisor,
        issuer=ISSUER,
        service_urls={s: f"http://127.0.0.1:{p}" for s, p in PORTS.items()},
        database_host="127.0.0.1",
        database_port=18432,
        database_name="socle",
    )
    return credentials


def _exited_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_absent_settings_come_from_the_running_stack_and_present_ones_stay(tmp_path: Path, capsys) -> None:
    credentials = _stack(tmp_path / ".socle", os.getpid())
    environ = {"SOCLE_STATE_DIR": str(tmp_path / ".socle"), "SOCLE_TENANTS_ISSUER": "https://sso.example.fr/realms/x"}
    wanted = ["SOCLE_TENANTS_API", "SOCLE_TENANTS_ISSUER", "SOCLE_TENANTS_CLIENT_SECRET", "SOCLE_BILLING_DATABASE_URL"]
    filled = fill_from_local_stack(wanted, environ)
    assert filled == ["SOCLE_TENANTS_API", "SOCLE_TENANTS_CLIENT_SECRET", "SOCLE_BILLING_DATABASE_URL"]
    assert environ["SOCLE_TENANTS_API"] == f"http://127.0.0.1:{PORTS['tenancy']}"
    assert environ["SOCLE_TENANTS_ISSUER"] == "https://sso.example.fr/realms/x"
    assert environ["SOCLE_TENANTS_CLIENT_SECRET"] == credentials["platform_client"]
    assert environ["SOCLE_BILLING_DATABASE_URL"] == (
        f"postgresql+asyncpg://socle_billing_app:{credentials['billing_app']}@127.0.0.1:18432/socle"
    )
    said = capsys.readouterr().err
    assert f"plateforme locale de {tmp_path / '.socle'} : SOCLE_TENANTS_API, SOCLE_TENANTS_CLIENT_SECRET" in said
    assert credentials["platform_client"] not in said


def test_the_stack_is_found_from_a_subfolder_of_the_checkout(tmp_path: Path, monkeypatch) -> None:
    _stack(tmp_path / ".socle", os.getpid())
    (tmp_path / "tenants" / "demo").mkdir(parents=True)
    assert find_state_dir({}, tmp_path / "tenants" / "demo") == tmp_path / ".socle"
    monkeypatch.chdir(tmp_path / "tenants")
    environ: dict[str, str] = {}
    assert fill_from_local_stack(["SOCLE_TENANCY_OIDC_ISSUER"], environ) == ["SOCLE_TENANCY_OIDC_ISSUER"]
    assert environ["SOCLE_TENANCY_OIDC_ISSUER"] == ISSUER


def test_a_stack_that_stopped_is_refused_in_french(tmp_path: Path) -> None:
    _stack(tmp_path, _exited_pid())
    with pytest.raises(LocalStackError, match=r"décrit une plateforme locale qui ne tourne plus : relancez-la"):
        fill_from_local_stack(["SOCLE_TENANTS_API"], {"SOCLE_STATE_DIR": str(tmp_path)})


def test_nothing_is_taken_outside_development_or_without_a_stack(tmp_path: Path) -> None:
    _stack(tmp_path, os.getpid())
    production = {"SOCLE_STATE_DIR": str(tmp_path), "SOCLE_TENANCY_ENVIRONMENT": "production"}
    assert fill_from_local_stack(["SOCLE_TENANCY_DATABASE_URL"], production) == []
    assert "SOCLE_TENANCY_DATABASE_URL" not in production
    nowhere = {"SOCLE_STATE_DIR": NO_LOCAL_STACK}
    assert fill_from_local_stack(["SOCLE_TENANCY_DATABASE_URL"], nowhere) == []
    assert nowhere == {"SOCLE_STATE_DIR": NO_LOCAL_STACK}


def test_a_settings_refusal_is_told_as_what_to_set(clean_socle_env) -> None:
    clean_socle_env.setenv("SOCLE_TENANCY_OIDC_ISSUER", "not-a-url")
    with pytest.raises(ValidationError) as refused:
        TenancySettings()  # type: ignore[call-arg]
    message = describe_settings_error(refused.value, "SOCLE_TENANCY_")
    assert message.startswith("réglages manquants ou invalides :\n")
    assert "  SOCLE_TENANCY_DATABASE_URL : manquant\n" in message
    assert "  SOCLE_TENANCY_OIDC_ISSUER : Value error, must be an http(s) URL" in message
    assert "lancez d'abord `make up`" in message
