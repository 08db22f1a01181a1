"""Turn a decoder's output into the device model's readings, by a per-model field map.

A field map names, for each decoded field (a dotted path into ``data``), the metric it feeds
and its unit; optionally a list of past readings (``history``) whose items carry their own
time. It is a pure function of (decoded data, field map, received time): no I/O, so the ways in
can run it for a whole batch and the registry can validate a field map when it is saved.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

#: Epoch values above this are milliseconds (year 5138 in seconds), below it seconds.
_MS_THRESHOLD = 10**11


@dataclass(frozen=True)
class FieldTarget:
    metric: str
    unit: str | None = None


@dataclass(frozen=True)
class HistorySpec:
    """Where past readings sit in ``data`` and which of their fields holds their time."""

    path: str
    time_field: str = "timestamp"


@dataclass(frozen=True)
class FieldMap:
    fields: Mapping[str, FieldTarget]
    history: HistorySpec | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> FieldMap:
        """Read the stored JSON form; raises ValueError with a French message naming the bad entry.

        ``{"fields": {"distance": "distance_mm", "battery": {"metric": "battery_pct", "unit": "%"}},
        "history": {"path": "history", "time": "timestamp"}}``
        """
        fields_raw = raw.get("fields")
        if not isinstance(fields_raw, Mapping) or not fields_raw:
            raise ValueError("La table de correspondance doit contenir un objet « fields » non vide.")
        fields: dict[str, FieldTarget] = {}
        for name, target in fields_raw.items():
            if isinstance(target, str) and target:
                fields[name] = FieldTarget(target)
            elif isinstance(target, Mapping) and isinstance(target.get("metric"), str) and target["metric"]:
                unit = target.get("unit")
                if unit is not None and not isinstance(unit, str):
                    raise ValueError(f"Champ « {name} » : l'unité doit être un texte.")
                fields[name] = FieldTarget(target["metric"], unit)
            else:
                raise ValueError(f"Champ « {name} » : la cible doit être un nom de métrique ou {{metric, unit}}.")
        history = None
        history_raw = raw.get("history")
        if history_raw is not None:
            if not isinstance(history_raw, Mapping) or not isinstance(history_raw.get("path"), str):
                raise ValueError("« history » doit être un objet {path, time}.")
            time_field = history_raw.get("time", "timestamp")
            if not isinstance(time_field, str) or not time_field:
                raise ValueError("« history.time » doit être un nom de champ.")
            history = HistorySpec(history_raw["path"], time_field)
        return cls(fields=fields, history=history)


@dataclass(frozen=True)
class Reading:
    metric: str
    value: float
    time: datetime


@dataclass(frozen=True)
class FieldIssue:
    """One field that produced no reading: ``field`` is its path in the decoded data."""

    field: str
    message: str


@dataclass
class MappedUplink:
    readings: list[Reading] = field(default_factory=list)
    errors: list[FieldIssue] = field(default_factory=list)
    warnings: list[FieldIssue] = field(default_factory=list)


_MISSING = object()


def _lookup(data: Mapping[str, Any], path: str) -> Any:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _leaves(data: Mapping[str, Any], prefix: str = "") -> list[str]:
    paths: list[str] = []
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            paths.extend(_leaves(value, f"{path}."))
        else:
            paths.append(path)
    return paths


def _shown(value: Any) -> str:
    """A value as the decoder wrote it (JSON), cut short for a message."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _instant(value: Any) -> datetime | None:
    """A reading's own time: epoch seconds or milliseconds, or an ISO 8601 instant with its offset."""
    number = _number(value)
    if number is not None:
        seconds = number / 1000 if abs(number) >= _MS_THRESHOLD else number
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo is not None else None
    return None


def _map_fields(
    data: Mapping[str, Any], field_map: FieldMap, time: datetime, prefix: str, result: MappedUplink, skip: str | None
) -> None:
    for path, target in field_map.fields.items():
        value = _lookup(data, path)
        if value is _MISSING:
            continue
        number = _number(value)
        if number is None:
            result.errors.append(FieldIssue(f"{prefix}{path}", f"la valeur {_shown(value)} n'est pas un nombre fini"))
            continue
        result.readings.append(Reading(target.metric, number, time))
    mapped = set(field_map.fields)
    for path in _leaves(data):
        if path not in mapped and path != skip and (skip is None or not path.startswith(f"{skip}.")):
            result.warnings.append(FieldIssue(f"{prefix}{path}", "champ ignoré : absent de la table de correspondance"))


def map_readings(data: Mapping[str, Any], field_map: FieldMap, received_at: datetime) -> MappedUplink:
    """Readings of one decoded uplink: current fields at ``received_at``, history items at their own time."""
    if received_at.tzinfo is None:
        raise ValueError("received_at must carry its UTC offset")
    result = MappedUplink()
    history = field_map.history
    _map_fields(data, field_map, received_at, "", result, history.path if history else None)
    if history is None:
        return result
    items = _lookup(data, history.path)
    if items is _MISSING:
        return result
    if not isinstance(items, list):
        result.errors.append(FieldIssue(history.path, "l'historique doit être une liste de relevés"))
        return result
    for index, item in enumerate(items):
        prefix = f"{history.path}[{index}]."
        if not isinstance(item, Mapping):
            result.errors.append(FieldIssue(f"{history.path}[{index}]", "un relevé d'historique doit être un objet"))
            continue
        raw_time = item.get(history.time_field, _MISSING)
        time = None if raw_time is _MISSING else _instant(raw_time)
        if time is None:
            why = "absent" if raw_time is _MISSING else f"illisible ({_shown(raw_time)})"
            result.errors.append(FieldIssue(f"{prefix}{history.time_field}", f"horodatage du relevé {why}"))
            continue
        rest = {key: value for key, value in item.items() if key != history.time_field}
        _map_fields(rest, field_map, time, prefix, result, None)
    return result
