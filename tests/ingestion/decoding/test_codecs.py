"""The bundled codecs on their vendors' documented example frames."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from socle_ingestion.domain.decoding import (
    Codec,
    DecoderError,
    FieldMap,
    bundled_codec,
    bundled_codecs,
    map_readings,
    run_codec,
    validate_source,
)

RECEIVED = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def decode(name: str, frame_hex: str, f_port: int = 85) -> dict[str, object]:
    return run_codec(Codec(name, bundled_codec(name)), bytes.fromhex(frame_hex), f_port, RECEIVED).data


def test_every_bundled_codec_passes_upload_validation() -> None:
    assert bundled_codecs() == ["milesight-am103", "milesight-em300-di", "milesight-em310-udl"]
    for name in bundled_codecs():
        assert len(validate_source(bundled_codec(name), name=name)) == 64


def test_em310_udl_documented_example() -> None:
    # Milesight-IoT/SensorDecoders em-series/em310-udl/README.md, "Example":
    # 01755C 03824408 040001 -> {"battery": 92, "distance": 2116, "position": "tilt"}
    result = run_codec(
        Codec("milesight-em310-udl", bundled_codec("milesight-em310-udl")),
        bytes.fromhex("01755C03824408040001"),
        85,
        RECEIVED,
    )
    assert result.data == {"battery": 92, "distance": 2116, "position": "tilt"}
    assert result.warnings == ("capteur incliné : la distance peut être fausse",)


def test_em310_udl_frame_from_the_payload_table_maps_to_metrics() -> None:
    # Same README, Telemetry table: 0x01 0x75 battery uint8 %, 0x03 0x82 distance uint16 LE mm.
    # 017564 03821E00 (the EM500-UDL README's example with the same channels): battery 100, 30 mm.
    data = decode("milesight-em310-udl", "01756403821E00")
    field_map = FieldMap.parse(
        {"fields": {"distance": "distance_mm", "battery": {"metric": "battery_pct", "unit": "%"}}}
    )
    mapped = map_readings(data, field_map, RECEIVED)
    assert [(r.metric, r.value, r.time) for r in mapped.readings] == [
        ("distance_mm", 30.0, RECEIVED),
        ("battery_pct", 100.0, RECEIVED),
    ]
    assert mapped.errors == []
    assert mapped.warnings == []


def test_am103_documented_example() -> None:
    # Milesight-IoT/SensorDecoders am-series/am103/README.md, "Example":
    # 017564 03671801 04686D 077DC501 -> {"battery": 100, "co2": 453, "temperature": 28, "humidity": 54.5}
    assert decode("milesight-am103", "0175640367180104686D077DC501") == {
        "battery": 100,
        "co2": 453,
        "temperature": 28,
        "humidity": 54.5,
    }


def test_am103_history_frame_and_negative_temperature() -> None:
    # Same README, Telemetry table: 0x20 0xCE = timestamp(4B) + temperature(int16/10) + humidity(uint8/2)
    # + co2(uint16), little-endian. 1665561758 = 9E744663, -2.5 °C = FFE7, 46.5 % = 5D, 612 ppm = 6402.
    data = decode("milesight-am103", "0367E7FF20CE9E744663E7FF5D6402")
    assert data == {
        "temperature": -2.5,
        "history": [{"timestamp": 1665561758, "temperature": -2.5, "humidity": 46.5, "co2": 612}],
    }


def test_em300_di_documented_example_with_a_past_reading() -> None:
    # Milesight-IoT/SensorDecoders em-series/em300-di/README.md, "Example":
    # 01755C 03673401 046865 20CE9E74466310015D020000010000 ->
    # {"battery": 92, "temperature": 30.8, "humidity": 50.5,
    #  "history": [{"temperature": 27.2, "humidity": 46.5, "pulse": 256, "timestamp": 1665561758}]}
    data = decode("milesight-em300-di", "01755C0367340104686520CE9E74466310015D020000010000")
    assert data == {
        "battery": 92,
        "temperature": 30.8,
        "humidity": 50.5,
        "history": [{"timestamp": 1665561758, "temperature": 27.2, "humidity": 46.5, "pulse": 256}],
    }
    field_map = FieldMap.parse(
        {
            "fields": {"pulse": "pulses", "battery": "battery_pct", "temperature": "temperature_c"},
            "history": {"path": "history", "time": "timestamp"},
        }
    )
    mapped = map_readings(data, field_map, RECEIVED)
    past = datetime(2022, 10, 12, 8, 2, 38, tzinfo=UTC)
    assert [(r.metric, r.value, r.time) for r in mapped.readings] == [
        ("battery_pct", 92.0, RECEIVED),
        ("temperature_c", 30.8, RECEIVED),
        ("pulses", 256.0, past),
        ("temperature_c", 27.2, past),
    ]
    assert [w.field for w in mapped.warnings] == ["humidity", "history[0].humidity"]


def test_em300_di_pulse_and_water_channels() -> None:
    # Same README, Telemetry table: 0x05 0xC8 pulse(4B); 0x05 0xE1 water_conv(2B) + pulse_conv(2B) + water(4B),
    # water = counter * water_conv / pulse_conv. Pulse 1000 = E8030000; conv 10/100, counter 1234 = D2040000.
    assert decode("milesight-em300-di", "05C8E8030000") == {"pulse": 1000}
    assert decode("milesight-em300-di", "05E10A006400D2040000") == {"water": 123.4}


@pytest.mark.parametrize(
    ("name", "frame", "why"),
    [
        ("milesight-em310-udl", "01755C0382", "trame tronquée dans le canal 0x3"),
        ("milesight-em310-udl", "0999AA", "canal inconnu 0x9 0x99 à l'octet 0"),
        ("milesight-am103", "01756420CE9E744663", "trame tronquée dans le canal 0x20"),
        ("milesight-em300-di", "01", "trame tronquée à l'octet 0"),
    ],
)
def test_broken_frames_are_refused_by_the_codec(name: str, frame: str, why: str) -> None:
    with pytest.raises(DecoderError) as caught:
        decode(name, frame)
    assert caught.value.reason == "decoder_errors"
    assert caught.value.message == f"Décodeur « {name} » : trame refusée par le décodeur : {why}."
