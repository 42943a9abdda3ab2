"""The metrics topic's records as the operator's tools can trust them.

Anyone who can write the metrics topic can write anything there, and the tools print it on an
operator's terminal. So each record is read into plain values first: known fields only, numbers that
are numbers (finite), a timestamp with its control characters and markup-looking text removed. A
record that is not a metrics record is reported as malformed, never printed as it came.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

NUMBERS = (
    "model_version", "events", "labelled", "dead_letters", "learning_rate", "weight_norm",
    "weight_growth", "events_per_second", "lag",
)  # fmt: skip
SECTIONS = {"window": ("events", "log_loss", "accuracy"), "cumulative": ("log_loss", "accuracy")}
LABELS = (
    "pending", "answered", "expired", "unmatched_answers", "duplicate_answers", "duplicate_questions",
)  # fmt: skip
_UNSAFE = re.compile(r"[^0-9A-Za-z:.+\- TZ]")


class Malformed(str):
    """Why a record is not a metrics record (printable, sanitised)."""


def _number(value: Any) -> bool:
    return value is None or (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    )


def clean_record(value: bytes | None) -> dict[str, Any] | Malformed:
    """The record's known fields as plain values, or :class:`Malformed` saying what is wrong."""
    try:
        record = json.loads(value or b"")
    except (ValueError, RecursionError):
        return Malformed("not JSON")
    if not isinstance(record, dict):
        return Malformed("not a JSON object")
    clean: dict[str, Any] = {}
    for name in NUMBERS:
        if not _number(record.get(name)):
            return Malformed(f"{name} is not a number")
        clean[name] = record.get(name)
    for section, names in SECTIONS.items():
        part = record.get(section, {})
        if not isinstance(part, dict):
            return Malformed(f"{section} is not an object")
        for name in names:
            if not _number(part.get(name)):
                return Malformed(f"{section}.{name} is not a number")
        clean[section] = {name: part.get(name) for name in names}
    labels = record.get("labels")
    if labels is not None:  # delayed labels only
        if not isinstance(labels, dict) or not all(_number(labels.get(name)) for name in LABELS):
            return Malformed("labels is not an object of counts")
        clean["labels"] = {name: labels.get(name) for name in LABELS}
    diverging = record.get("diverging", False)
    clean["diverging"] = diverging if isinstance(diverging, bool) else None
    ts = record.get("ts")
    clean["ts"] = _UNSAFE.sub("", ts)[:40] if isinstance(ts, str) else None
    if clean["events"] is None:
        return Malformed("it has no event count")
    return clean
