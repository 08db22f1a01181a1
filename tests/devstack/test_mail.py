"""The development mail sink as ``make up`` runs it: a real process on a free port, fed by the real Keycloak."""

from __future__ import annotations

import smtplib
import stat
import tempfile
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from socle_devstack.mail import MailSink, send_realm_mail_to
from socle_devstack.processes import free_port, port_is_free


@pytest.fixture
def sink() -> Iterator[MailSink]:
    with tempfile.TemporaryDirectory(prefix="socle-mail-") as scratch:
        started = MailSink(Path(scratch) / "mail", free_port(), Path(scratch) / "logs" / "mail.log")
        started.start()
        yield started
        started.stop()


def _message(to: str, subject: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "socle@socle.localhost"
    message["To"] = to
    message["Subject"] = subject
    message.set_content("Définissez votre mot de passe.")
    return message


def test_each_message_is_kept_in_its_own_eml_file_and_logged(sink: MailSink) -> None:
    with smtplib.SMTP(sink.host, sink.port, timeout=10) as client:
        client.send_message(_message("camille@mairie-exemple.fr", "Invitation à Socle"))
        client.send_message(_message("dominique@mairie-exemple.fr", "Vérifiez votre adresse"))

    files = sorted(sink.folder.glob("*.eml"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
    assert [p.stem.rsplit("-", 1)[1] for p in files] == ["1", "2"]
    assert all(len(p.stem.split("-")[0]) == len("20260101T120000Z") for p in files)
    first = files[0].read_bytes()
    assert first.startswith(b"Return-Path: <socle@socle.localhost>\r\nDelivered-To: camille@mairie-exemple.fr\r\n")
    assert b"\r\nTo: camille@mairie-exemple.fr\r\n" in first
    assert "Définissez votre mot de passe.".encode() in first
    assert "dominique@mairie-exemple.fr" in files[1].read_text()
    assert list(sink.folder.glob(".*")) == []  # no partial file left behind

    log = sink.log_file.read_text().splitlines()
    kept = [line for line in log if ".eml from " in line]
    assert kept == [
        f"mail {files[0].name} from socle@socle.localhost to camille@mairie-exemple.fr: Invitation à Socle",
        f"mail {files[1].name} from socle@socle.localhost to dominique@mairie-exemple.fr: Vérifiez votre adresse",
    ]


def test_the_sink_gives_keycloak_its_address(sink: MailSink) -> None:
    assert sink.keycloak_env() == {
        "SOCLE_SMTP_HOST": "127.0.0.1",
        "SOCLE_SMTP_PORT": str(sink.port),
        "SOCLE_SMTP_FROM": "socle@socle.localhost",
    }


def test_stop_ends_the_process_and_frees_the_port(sink: MailSink) -> None:
    assert sink.process is not None
    sink.stop()
    assert sink.process.poll() is not None
    assert port_is_free(sink.port)
    assert "mail sink stopped" in sink.log_file.read_text()


def test_a_realm_imported_without_the_sink_is_pointed_at_it(keycloak, kc_admin, sink: MailSink) -> None:
    """The fix-up ``make up`` applies to a realm kept from an earlier run, then Keycloak's own mail."""
    previous = kc_admin.request("GET", "").json().get("smtpServer") or {}
    try:
        assert send_realm_mail_to(keycloak, sink) is True
        assert send_realm_mail_to(keycloak, sink) is False  # already pointing at it: left alone
        smtp = kc_admin.request("GET", "").json()["smtpServer"]
        assert (smtp["host"], smtp["port"], smtp["from"]) == ("127.0.0.1", str(sink.port), "socle@socle.localhost")
        address = f"agent-{uuid.uuid4().hex[:8]}@mairie-exemple.fr"
        created = kc_admin.request(
            "POST", "/users", json={"username": address, "email": address, "enabled": True, "firstName": "Camille"}
        )
        user_id = created.headers["Location"].rsplit("/", 1)[-1]
        kc_admin.request("PUT", f"/users/{user_id}/execute-actions-email", json=["UPDATE_PASSWORD"])
        (kept,) = [p for p in sink.folder.glob("*.eml") if f"Delivered-To: {address}" in p.read_text()]
        assert "Return-Path: <socle@socle.localhost>" in kept.read_text()
        assert f"to {address}:" in sink.log_file.read_text()
    finally:
        kc_admin.request("PUT", "", json={"smtpServer": previous})


def test_the_messages_are_readable_by_the_stacks_account_only(tmp_path: Path) -> None:
    """The links in them log someone in: no other local account may read them, even from an earlier run."""
    folder = tmp_path / "mail"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    left = folder / "20260101T120000Z-1.eml"
    left.write_text("Définissez votre mot de passe : http://localhost/lien")
    left.chmod(0o644)
    sink = MailSink(folder, free_port(), tmp_path / "logs" / "mail.log")
    sink.start()
    try:
        with smtplib.SMTP(sink.host, sink.port, timeout=10) as client:
            client.send_message(_message("camille@mairie-exemple.fr", "Invitation à Socle"))
    finally:
        sink.stop()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    kept = sorted(folder.glob("*.eml"))
    assert len(kept) == 2
    assert {stat.S_IMODE(p.stat().st_mode) for p in kept} == {0o600}
