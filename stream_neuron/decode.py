"""Raw input values to validated events, and bad ones to a reason a person can act on.

The fast path is one pydantic-core parse. Only when it fails does a second, slower pass find the
first problem and say it plainly: bad events are rare, clear reasons matter more than speed there.
"""

from __future__ import annotations

import json
import math
from typing import Any

from pydantic import ValidationError

from stream_neuron.contracts import InputEvent


class BadEventError(Exception):
    """An input record that cannot be used; ``reason`` goes to the dead letter's headers."""

    def __init__(self, reason: str, error_class: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error_class = error_class


def decode_event(value: bytes | None, max_bytes: int) -> InputEvent:
    """The event in ``value``, or :class:`BadEventError` saying what is wrong with it."""
    if value is None:
        raise BadEventError("the record has no value (a tombstone)", "EmptyValue")
    if len(value) > max_bytes:
        raise BadEventError(
            f"the value is {len(value)} bytes, over the limit of {max_bytes}", "OversizedRecord"
        )
    try:
        return InputEvent.model_validate_json(value)
    except ValidationError:
        raise diagnose(value) from None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_feature(where: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadEventError(f"{where} must be a number, got {_kind(value)} {_shown(value)}", "InvalidFeature")
    if not math.isfinite(float(value)):
        raise BadEventError(f"{where} must be a finite number, got {_shown(value)}", "InvalidFeature")


def diagnose(value: bytes) -> BadEventError:
    """The first problem of a value the schema refused, in words."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as error:
        return BadEventError(
            f"the value is not valid UTF-8 (byte 0x{value[error.start]:02x} at position {error.start})",
            "InvalidUtf8",
        )
    try:
        event = json.loads(text)  # NaN and Infinity parse here, so the check below can name them
    except (ValueError, RecursionError) as error:
        return BadEventError(f"the value is not valid JSON: {error}", "InvalidJson")
    try:
        _check_structure(event)
    except BadEventError as bad:
        return bad
    return BadEventError("the value does not match the input event schema", "InvalidEvent")


def _check_structure(event: Any) -> None:
    if not isinstance(event, dict):
        raise BadEventError(f"the value must be a JSON object, got {_kind(event)}", "InvalidEvent")
    if "features" not in event:
        raise BadEventError('the event has no "features"', "MissingFeatures")
    features = event["features"]
    if isinstance(features, dict):
        for name, feature in features.items():
            _check_feature(f'feature "{name}"', feature)
    elif isinstance(features, list):
        for position, feature in enumerate(features):
            _check_feature(f"feature {position}", feature)
    else:
        raise BadEventError(
            f'"features" must be an object or an array, got {_kind(features)}', "InvalidFeatures"
        )
    label = event.get("label")
    label_is_number = isinstance(label, int | float) and math.isfinite(float(label))
    if label is not None and not isinstance(label, bool) and not label_is_number:
        raise BadEventError(
            f'"label" must be a number, a boolean or null, got {_shown(label)}', "InvalidLabel"
        )
    event_id = event.get("id")
    if event_id is not None and (isinstance(event_id, bool) or not isinstance(event_id, str | int)):
        raise BadEventError(f'"id" must be a string or an integer, got {_kind(event_id)}', "InvalidId")
    ts = event.get("ts")
    if ts is not None and not isinstance(ts, str):
        raise BadEventError(f'"ts" must be a string, got {_kind(ts)}', "InvalidTimestamp")
