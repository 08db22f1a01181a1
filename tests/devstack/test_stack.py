"""The local stack's secrets: the isolation report's signing key is an Ed25519 private key."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from socle_devstack.stack import REPORT_SIGNING_KEY, Credentials
from socle_tenancy.domain.isolation import signing


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
