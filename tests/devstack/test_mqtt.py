"""The suite's MQTT broker is the real mosquitto: messages go through it, QoS 1 is acknowledged."""

from __future__ import annotations

import queue
import socket
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from socle_devstack.mqtt import HOST, MqttBroker
from socle_devstack.processes import free_port


def _client(broker: MqttBroker, client_id: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.connect(HOST, broker.port, keepalive=10)
    client.loop_start()
    return client


def test_a_published_reading_reaches_a_subscriber(mqtt_broker: MqttBroker) -> None:
    received: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    subscribed: queue.Queue[object] = queue.Queue()
    subscriber = _client(mqtt_broker, "test-subscriber")
    subscriber.on_message = lambda _c, _u, message: received.put(message)
    subscriber.on_subscribe = lambda *args: subscribed.put(args)
    publisher = _client(mqtt_broker, "test-gateway")
    try:
        subscriber.subscribe("socle/commune-30352/devices/+/readings", qos=1)
        subscribed.get(timeout=10)
        info = publisher.publish("socle/commune-30352/devices/gauge-1/readings", b'{"level_cm": 42}', qos=1)
        info.wait_for_publish(timeout=10)
        assert info.is_published()  # the broker acknowledged it (PUBACK)
        message = received.get(timeout=10)
        assert message.topic == "socle/commune-30352/devices/gauge-1/readings"
        assert message.payload == b'{"level_cm": 42}'
        assert message.qos == 1
        # A topic outside the subscription is not delivered.
        publisher.publish("socle/commune-30321/devices/gauge-9/readings", b"{}", qos=1).wait_for_publish(10)
        with pytest.raises(queue.Empty):
            received.get(timeout=0.5)
    finally:
        for client in (publisher, subscriber):
            client.loop_stop()
            client.disconnect()


def _listening_addresses(port: int) -> set[str]:
    """IPv4 and IPv6 addresses listening on ``port``, read from the kernel's socket tables."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                if len(address) == 8:
                    found.add(socket.inet_ntop(socket.AF_INET, bytes.fromhex(address)[::-1]))
                else:
                    found.add(address)
    return found


def test_the_broker_listens_on_loopback_only_and_stops_cleanly(tmp_path) -> None:
    broker = MqttBroker(tmp_path / "mqtt", free_port(), tmp_path / "mosquitto.log")
    tmp_path.chmod(0o755)
    broker.start()
    try:
        assert f"listener {broker.port} 127.0.0.1" in (tmp_path / "mqtt" / "mosquitto.conf").read_text()
        assert _listening_addresses(broker.port) == {"127.0.0.1"}
    finally:
        broker.stop()
    assert broker.process is not None
    assert broker.process.poll() is not None
    with socket.socket() as sock:
        assert sock.connect_ex((HOST, broker.port)) != 0
