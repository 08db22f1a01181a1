"""The field map: decoded fields to the model's metrics, past readings at their own time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from socle_ingestion.domain.decoding import FieldIssue, FieldMap, FieldTarget, HistorySpec, Reading, map_readings

RECEIVED = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
PULSE_MAP = FieldMap.parse(
    {
        "fields": {"pulse": {"metric": "pulses", "unit": "1"}, "battery": "battery_pct", "meter.index": "index_m3"},
        "history": {"path": "history", "time": "timestamp"},
    }
)


def test_parse_reads_both_target_forms() -> None:
    assert (
        FieldMap(
            fields={
                "pulse": FieldTarget("pulses", "1"),
                "battery": FieldTarget("battery_pct"),
                "meter.index": FieldTarget("index_m3"),
            },
            history=HistorySpec("history", "timestamp"),
        )
        == PULSE_MAP
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "La table de correspondance doit contenir un objet « fields » non vide."),
        ({"fields": {"a": 3}}, "Champ « a » : la cible doit être un nom de métrique ou {metric, unit}."),
        ({"fields": {"a": {"metric": "m", "unit": 1}}}, "Champ « a » : l'unité doit être un texte."),
        ({"fields": {"a": "m"}, "history": "h"}, "« history » doit être un objet {path, time}."),
        ({"fields": {"a": "m"}, "history": {"path": "h", "time": ""}}, "« history.time » doit être un nom de champ."),
    ],
)
def test_parse_refuses_a_malformed_map(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("{", r"\{").replace("}", r"\}") + "$"):
        FieldMap.parse(raw)


def test_current_fields_at_received_time_nested_paths_included() -> None:
    mapped = map_readings({"pulse": 1200, "battery": 88, "meter": {"index": 12.5}}, PULSE_MAP, RECEIVED)
    assert mapped.readings == [
        Reading("pulses", 1200.0, RECEIVED),
        Reading("battery_pct", 88.0, RECEIVED),
        Reading("index_m3", 12.5, RECEIVED),
    ]
    assert mapped.errors == []
    assert mapped.warnings == []


def test_unknown_fields_are_warnings_and_non_numbers_are_errors_naming_the_field() -> None:
    data = {"pulse": "1200", "battery": True, "meter": {"index": None, "serial": "A1"}, "rssi": -80}
    mapped = map_readings(data, PULSE_MAP, RECEIVED)
    assert mapped.readings == []
    assert mapped.errors == [
        FieldIssue("pulse", 'la valeur "1200" n\'est pas un nombre fini'),
        FieldIssue("battery", "la valeur true n'est pas un nombre fini"),
        FieldIssue("meter.index", "la valeur null n'est pas un nombre fini"),
    ]
    assert mapped.warnings == [
        FieldIssue("meter.serial", "champ ignoré : absent de la table de correspondance"),
        FieldIssue("rssi", "champ ignoré : absent de la table de correspondance"),
    ]


def test_history_items_keep_their_own_time_in_any_usual_form() -> None:
    paris = timezone(timedelta(hours=1))
    data = {
        "pulse": 300,
        "history": [
            {"timestamp": 1764486000, "pulse": 100},
            {"timestamp": 1764489600000, "pulse": 200},
            {"timestamp": "2025-11-30T09:00:00+01:00", "pulse": 250},
        ],
    }
    mapped = map_readings(data, PULSE_MAP, RECEIVED)
    assert mapped.readings == [
        Reading("pulses", 300.0, RECEIVED),
        Reading("pulses", 100.0, datetime(2025, 11, 30, 7, 0, tzinfo=UTC)),
        Reading("pulses", 200.0, datetime(2025, 11, 30, 8, 0, tzinfo=UTC)),
        Reading("pulses", 250.0, datetime(2025, 11, 30, 9, 0, tzinfo=paris)),
    ]
    assert mapped.errors == []


def test_broken_history_items_are_errors_with_their_index() -> None:
    data = {
        "history": [
            {"pulse": 1},
            {"timestamp": "hier", "pulse": 2},
            {"timestamp": "2025-11-30T09:00:00", "pulse": 3},
            {"timestamp": 1e300, "pulse": 4},
            7,
            {"timestamp": 1764486000, "pulse": "x", "temp": 3},
        ]
    }
    mapped = map_readings(data, PULSE_MAP, RECEIVED)
    assert mapped.readings == []
    assert mapped.errors == [
        FieldIssue("history[0].timestamp", "horodatage du relevé absent"),
        FieldIssue("history[1].timestamp", 'horodatage du relevé illisible ("hier")'),
        FieldIssue("history[2].timestamp", 'horodatage du relevé illisible ("2025-11-30T09:00:00")'),
        FieldIssue("history[3].timestamp", "horodatage du relevé illisible (1e+300)"),
        FieldIssue("history[4]", "un relevé d'historique doit être un objet"),
        FieldIssue("history[5].pulse", 'la valeur "x" n\'est pas un nombre fini'),
    ]
    assert mapped.warnings == [FieldIssue("history[5].temp", "champ ignoré : absent de la table de correspondance")]


def test_history_that_is_not_a_list_is_an_error() -> None:
    mapped = map_readings({"history": {"pulse": 1}}, PULSE_MAP, RECEIVED)
    assert mapped.errors == [FieldIssue("history", "l'historique doit être une liste de relevés")]


def test_received_time_must_be_aware() -> None:
    with pytest.raises(ValueError, match="UTC offset"):
        map_readings({}, PULSE_MAP, datetime(2026, 11, 30, 8, 0))
