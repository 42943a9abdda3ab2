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
OPTIMIZERS = ("sgd", "adagrad", "adam")
DETECTORS = ("adwin", "page-hinkley")
MAX_CANDIDATES = 64
_UNSAFE = re.compile(r"[^0-9A-Za-z:.+\- TZ]")


class Malformed(str):
    """Why a record is not a metrics record (printable, sanitised)."""


def _number(value: Any) -> bool:
    return value is None or (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    )


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


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
    drift = record.get("drift")
    if drift is not None:  # --drift-detector
        if not (
            isinstance(drift, dict)
            and drift.get("detector") in DETECTORS
            and all(_count(drift.get(name)) for name in ("events_since_last", "count"))
        ):
            return Malformed("drift is not a detector's counts")
        clean["drift"] = {name: drift[name] for name in ("detector", "events_since_last", "count")}
    if record.get("candidates") is not None:  # several learning rates raced
        candidates = _clean_candidates(record)
        if isinstance(candidates, Malformed):
            return candidates
        clean.update(candidates)
    diverging = record.get("diverging", False)
    clean["diverging"] = diverging if isinstance(diverging, bool) else None
    ts = record.get("ts")
    clean["ts"] = _UNSAFE.sub("", ts)[:40] if isinstance(ts, str) else None
    if clean["events"] is None:
        return Malformed("it has no event count")
    return clean


def _clean_candidates(record: dict[str, Any]) -> dict[str, Any] | Malformed:
    """The candidates' figures, the champion's index and the count of its changes."""
    candidates = record["candidates"]
    if not isinstance(candidates, list) or not 0 < len(candidates) <= MAX_CANDIDATES:
        return Malformed(f"candidates is not a list of 1 to {MAX_CANDIDATES} candidates")
    clean = []
    for entry in candidates:
        if not isinstance(entry, dict) or not _number(entry.get("learning_rate")):
            return Malformed("a candidate has no learning rate")
        item: dict[str, Any] = {"learning_rate": entry["learning_rate"]}
        for section in ("window", "cumulative"):
            part = entry.get(section)
            if not isinstance(part, dict) or not all(_number(part.get(n)) for n in ("log_loss", "accuracy")):
                return Malformed(f"a candidate's {section} is not an object of numbers")
            item[section] = {n: part.get(n) for n in ("log_loss", "accuracy")}
        item["optimizer"] = entry.get("optimizer") if entry.get("optimizer") in OPTIMIZERS else None
        item["diverging"] = entry.get("diverging") is True
        item["champion"] = entry.get("champion") is True
        clean.append(item)
    champion, changes = record.get("champion"), record.get("champion_changes")
    if not (isinstance(champion, int) and not isinstance(champion, bool) and 0 <= champion < len(clean)):
        return Malformed("champion is not the index of a candidate")
    if not (_number(changes) and changes is not None and changes >= 0):
        return Malformed("champion_changes is not a count")
    return {"candidates": clean, "champion": champion, "champion_changes": int(changes)}
