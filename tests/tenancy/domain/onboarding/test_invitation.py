"""The first admin's invitation e-mail, as Keycloak sends it with the realm's ``socle`` e-mail theme.

Sent by tenancy's Keycloak adapter to the development mail sink (a real SMTP server): it says what
Socle is, which commune invites, and its link walks through the account's setup to a last page
that links onward to the console.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest

from socle_devstack.mail import MailSink
from socle_devstack.processes import free_port
from socle_tenancy.keycloak import KeycloakAdmin
from tests.support.browser import complete_invitation, visible_text
from tests.support.keycloak_admin import KeycloakAdmin as RealmAdmin

CONSOLE = "http://localhost:18100"  # the console URL the test realm was imported with


@pytest.fixture
def mail_folder(tmp_path: Path, kc_admin: RealmAdmin) -> Iterator[Path]:
    """The realm's e-mails go to the devstack's mail sink while the test runs."""
    sink = MailSink(tmp_path / "mail", free_port(), tmp_path / "mail.log")
    sink.start()
    previous = kc_admin.request("GET", "").json().get("smtpServer") or {}
    kc_admin.request("PUT", "", json={"smtpServer": {"host": sink.host, "port": str(sink.port), "from": sink.sender}})
    try:
        yield tmp_path / "mail"
    finally:
        kc_admin.request("PUT", "", json={"smtpServer": previous})
        sink.stop()


def _mail_to(folder: Path, address: str, timeout: float = 30) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in folder.glob("*.eml"):
            content = path.read_bytes()
            if f"Delivered-To: {address}".encode() in content:
                return content
        time.sleep(0.3)
    raise AssertionError(f"no mail to {address} in {folder}")


async def test_the_invitation_says_who_invites_to_what_and_ends_at_the_console(
    tenancy_settings, kc_admin: RealmAdmin, mail_folder: Path
) -> None:
    alias = f"commune-{uuid.uuid4().hex[:8]}"
    # Not a commune of the demo EPCI: organization names are unique in the realm, and the onboarding
    # tests give a commune's organization its own name.
    name = f"Saint-Clément-lès-Essais ({alias[-5:]})"
    created = kc_admin.request("POST", "/organizations", json={"alias": alias, "name": name, "enabled": True})
    organization_id = created.headers["Location"].rsplit("/", 1)[-1]
    email = f"dgs-{alias}@example.fr"
    actions = ["VERIFY_EMAIL", "UPDATE_PASSWORD", "CONFIGURE_TOTP"]
    user = kc_admin.request(
        "POST", "/users", json={"username": email, "email": email, "enabled": True, "requiredActions": actions}
    )
    user_id = user.headers["Location"].rsplit("/", 1)[-1]
    kc_admin.request("POST", f"/organizations/{organization_id}/members", json=user_id)

    keycloak = KeycloakAdmin(tenancy_settings(console_url=CONSOLE))
    try:
        assert await keycloak.send_invitation(user_id, actions) == ""
    finally:
        await keycloak.aclose()

    message = BytesParser(policy=policy.default).parsebytes(_mail_to(mail_folder, email))
    assert message["Subject"] == "Votre accès à Socle, la plateforme de données du territoire"
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert text.startswith(f"{name} vous invite sur Socle.")
    assert "Socle est la plateforme de données que l'intercommunalité partage avec ses communes" in text
    assert f"Votre identifiant : {email}" in text
    assert "Mise à jour du mot de passe, Configurer un OTP" in text
    assert "console Socle" in text
    page_html = message.get_body(preferencelist=("html",)).get_content()
    assert f"<strong>{name} vous invite sur Socle.</strong>" in page_html
    (link,) = re.findall(r"http://\S+/login-actions/action-token\?key=[\w.-]+", text)
    assert f'<a href="{link}">Activer mon compte Socle</a>' in page_html

    last = complete_invitation(
        link, password=f"Pw-{uuid.uuid4().hex[:12]}A9", first_name="Dominique", last_name="Garcia"
    )
    assert "Votre compte a été mis à jour" in visible_text(last), visible_text(last)[:800]
    assert f'href="{CONSOLE}/"' in last.text  # « Revenir à l'application »: onward to the console
    account = kc_admin.request("GET", f"/users/{user_id}").json()
    assert account["requiredActions"] == []
    assert {c["type"] for c in kc_admin.request("GET", f"/users/{user_id}/credentials").json()} == {"password", "otp"}
