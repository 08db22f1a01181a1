"""The development mail sink: where the local Keycloak's e-mails go instead of a real relay.

Keycloak sends invitations ("set your password"), e-mail verifications and the first admin
invitation of an onboarding. Locally they must work without any outside server and must never
reach a real address (the demo EPCI's addresses are illustrative), so ``make up`` runs this
small SMTP server (aiosmtpd) as its own supervised process. Each message is kept as
``<folder>/<timestamp>-<n>.eml`` (open it with any mail client) and logged on one line.
The messages hold live links (set a password, join a commune): the folder is 0700 and each
file 0600, readable by the account that runs the stack only.

Run alone: ``python -m socle_devstack.mail --port 8125 --folder .socle/mail``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import smtplib
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.parser import BytesHeaderParser
from pathlib import Path

import httpx
from aiosmtpd.smtp import SMTP, Envelope, Session

from socle_devstack.keycloak import REALM, KeycloakServer
from socle_devstack.processes import spawn, stop_group, wait_for

DEFAULT_PORT = 8125
#: The sender Keycloak announces locally; production sets its own (docs/operations/helm.md).
DEFAULT_SENDER = "socle@socle.localhost"
HOST = "127.0.0.1"


class MailFolder:
    """aiosmtpd handler that writes every accepted message to one ``.eml`` file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        path = self.keep(envelope.mail_from or "", list(envelope.rcpt_tos), envelope.original_content or b"")
        print(self.describe(path, envelope), flush=True)
        return "250 Message accepted for delivery"

    def close_up(self) -> None:
        """Make the folder owner-only, and the messages an earlier, looser run left in it."""
        self._owner_only_folder()
        for kept in self.folder.glob("*.eml"):
            kept.chmod(0o600)

    def keep(self, sender: str, recipients: list[str], content: bytes) -> Path:
        """Write the message as a mail server would deliver it; the file appears whole or not at all.

        Owner-only from the first byte: the file is created 0600 (not chmod-ed after writing), and
        the folder is made 0700 even when an earlier run left it open.
        """
        self._owner_only_folder()  # also when removed and made again by hand while the sink ran
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        while True:
            self.count += 1
            path = self.folder / f"{stamp}-{self.count}.eml"
            if not path.exists():
                break
        delivery = f"Return-Path: <{sender}>\r\n" + "".join(f"Delivered-To: {r}\r\n" for r in recipients)
        partial = self.folder / f".{path.name}.partial"
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(descriptor, 0o600)  # a leftover partial file keeps its old mode through O_TRUNC
        with os.fdopen(descriptor, "wb") as file:
            file.write(delivery.encode() + content)
        partial.replace(path)
        return path

    def _owner_only_folder(self) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.folder.chmod(0o700)

    @staticmethod
    def describe(path: Path, envelope: Envelope) -> str:
        headers = BytesHeaderParser(policy=policy.default).parsebytes(envelope.original_content or b"")
        subject = str(headers.get("subject", "")).replace("\n", " ")
        return f"mail {path.name} from {envelope.mail_from} to {', '.join(envelope.rcpt_tos)}: {subject}"


async def serve(host: str, port: int, folder: Path) -> None:
    """Accept mail until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    handler = MailFolder(folder)
    handler.close_up()
    server = await loop.create_server(lambda: SMTP(handler, hostname="socle-mail-sink"), host, port)
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    print(f"mail sink listening on {host}:{port}, writing to {folder}", flush=True)
    async with server:
        await stopping.wait()
    print("mail sink stopped", flush=True)


@dataclass
class MailSink:
    """The sink as a child process of ``make up``, stopped with the rest of the stack."""

    folder: Path
    port: int
    log_file: Path
    host: str = HOST
    sender: str = DEFAULT_SENDER
    process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> None:
        self.process = spawn(
            [
                sys.executable,
                "-m",
                "socle_devstack.mail",
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--folder",
                str(self.folder),
            ],
            self.log_file,
        )
        wait_for(self._answers, timeout, "mail sink", self.log_file, self.process)

    def _answers(self) -> bool:
        try:
            with smtplib.SMTP(self.host, self.port, timeout=2) as client:
                return client.noop()[0] == 250
        except OSError:
            return False

    def keycloak_env(self) -> dict[str, str]:
        """The realm's ``smtpServer`` placeholders (infra/keycloak/socle-realm.json) for this sink."""
        return {"SOCLE_SMTP_HOST": self.host, "SOCLE_SMTP_PORT": str(self.port), "SOCLE_SMTP_FROM": self.sender}

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_group(self.process.pid, process=self.process)


def send_realm_mail_to(keycloak: KeycloakServer, sink: MailSink) -> bool:
    """Point the realm's SMTP settings at the sink; True when they pointed elsewhere.

    The realm file is imported only into a new Keycloak: a realm kept from an earlier ``make up``
    (or from before the sink existed) would otherwise keep sending nowhere, or to an old port.
    """
    url = f"{keycloak.url}/admin/realms/{REALM}"
    headers = {"Authorization": f"Bearer {keycloak.admin_token()}"}
    with httpx.Client(headers=headers, timeout=15) as client:
        current = client.get(url)
        current.raise_for_status()
        smtp = current.json().get("smtpServer") or {}
        wanted = sink.keycloak_env()
        if smtp.get("host") == wanted["SOCLE_SMTP_HOST"] and smtp.get("port") == wanted["SOCLE_SMTP_PORT"]:
            return False
        settings = {"host": sink.host, "port": str(sink.port), "from": sink.sender, "fromDisplayName": "Socle"}
        client.put(url, json={"smtpServer": settings}).raise_for_status()
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="socle-mail-sink", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, default=int(os.environ.get("SOCLE_SMTP_PORT", DEFAULT_PORT)))
    parser.add_argument("--folder", type=Path, required=True)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
