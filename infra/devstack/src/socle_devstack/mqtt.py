"""A local MQTT broker (Debian's mosquitto) on a port of our choosing.

Field gateways publish their readings over MQTT; the ingestion service subscribes. The test
suite runs the real broker rather than a fake so that QoS, retained messages and
reconnections behave as in production. The broker gets a configuration file of its own (the
packaged service, if any, is left alone) and listens on the loopback interface only.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from socle_devstack.processes import spawn, stop_group, wait_for

HOST = "127.0.0.1"


def mosquitto_binary() -> Path:
    found = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None
    )
    if found is None:
        raise RuntimeError("mosquitto is needed for the MQTT broker: apt-get install mosquitto")
    return Path(found)


def _accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex((HOST, port)) == 0


@dataclass
class MqttBroker:
    folder: Path
    port: int
    log_file: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{HOST}:{self.port}"

    def configuration(self) -> str:
        # Development and tests only: anonymous clients on the loopback interface; the
        # production broker's authentication comes with the ingestion service.
        return "\n".join(
            [
                f"listener {self.port} {HOST}",
                "allow_anonymous true",
                "persistence false",
                "log_dest stdout",
                "log_type error",
                "log_type warning",
                "log_type notice",
                "connection_messages true",
                "",
            ]
        )

    def start(self, timeout: float = 20) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        config = self.folder / "mosquitto.conf"
        config.write_text(self.configuration())
        # mosquitto started as root drops to its own user, which must still read the file.
        config.chmod(0o644)
        self.process = spawn([str(mosquitto_binary()), "-c", str(config)], self.log_file)
        wait_for(lambda: _accepts(self.port), timeout, "mosquitto", self.log_file, self.process)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_group(self.process.pid, timeout=10, process=self.process)
