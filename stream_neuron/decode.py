"""Raw input values to validated events, and bad ones to a reason a person can act on.

The fast path is one parse (jiter, which also refuses a key repeated in an object) and a few type
checks. Only when they fail does a second, slower pass find the first problem and say it plainly:
bad events are rare, clear reasons matter more than speed there. The contract is
``contracts.InputEvent``; this module enforces it without building a model object per event.
"""

from __future__ import annotations

import json
import math
from typing import Any, TypedDict

from jiter import from_json

MAX_REASON_CHARS = 500
_NUMBER = frozenset({float, int})
_ID = frozenset({str, int, type(None)})
_LABEL = frozenset({bool, int, float, type(None)})
_TS = frozenset({str, type(None)})


class Event(TypedDict, total=False):
    """A decoded input event (``features`` is always there, except in an answer: an id and a label
    without features, accepted when delayed labels are on; the rest may be absent or null)."""

    id: str | int | None
    features: dict[str, float | int] | list[float | int]
    label: bool | float | int | None
    ts: str | None


class BadEventError(Exception):
    """An input record that cannot be used; ``reason`` goes to the dead letter's headers (bounded to
    :data:`MAX_REASON_CHARS`)."""

    def __init__(self, reason: str, error_class: str) -> None:
        if len(reason) > MAX_REASON_CHARS:
            reason = reason[: MAX_REASON_CHARS - 3] + "..."
        super().__init__(reason)
        self.reason = reason
        self.error_class = error_class


def decode_event(value: bytes | None, max_bytes: int, answers: bool = False, named: bool = False) -> Event:
    """The event in ``value``, or :class:`BadEventError` saying what is wrong with it. Feature values
    are JSON numbers here; whether each fits a float64 is checked where they are copied into a row.
    ``answers``: an event without ``"features"`` is an answer (it needs an id and a label).
    ``named`` (``--features open|hashed``): the features are an object whose values the feature
    encoder checks (numbers, strings and booleans are taken there)."""
    if value is None:
        raise BadEventError("the record has no value (a tombstone)", "EmptyValue")
    if len(value) > max_bytes:
        raise BadEventError(
            f"the value is {len(value)} bytes, over the limit of {max_bytes}", "OversizedRecord"
        )
    try:
        event = from_json(value, allow_inf_nan=False, catch_duplicate_keys=True, cache_mode="keys")
    except ValueError as error:
        raise diagnose(value, str(error), answers, named) from None
    if type(event) is not dict:
        raise diagnose(value)
    features: Any = event.get("features")
    kind = type(features)
    values = features.values() if kind is dict else features if kind is list else None
    if values is None and answers and features is None:
        if _is_answer(event):
            return event  # type: ignore[return-value]
        raise diagnose(value, answers=True, named=named)
    if named and kind is not dict:
        raise diagnose(value, answers=answers, named=True)
    if (
        values is None
        or not (named or all(map(_NUMBER.__contains__, map(type, values))))
        or type(event.get("label")) not in _LABEL
        or type(event.get("id")) not in _ID
        or type(event.get("ts")) not in _TS
    ):
        raise diagnose(value, answers=answers, named=named)
    return event  # type: ignore[return-value]


def _is_answer(event: dict[str, Any]) -> bool:
    label = event.get("label")
    return (
        label is not None
        and type(label) in _LABEL
        and (type(label) is not float or math.isfinite(label))
        and event.get("id") is not None
        and type(event.get("id")) in _ID
        and type(event.get("ts")) in _TS
    )


def id_text(event: Event) -> str | None:
    """The event's id as its predictions carry it: a JSON integer as its decimal text."""
    event_id = event.get("id")
    return event_id if event_id is None or type(event_id) is str else str(event_id)


def is_answer(event: Event) -> bool:
    """An answer: an id and a label, no features (absent or null; decoded with ``answers=True``)."""
    return event.get("features") is None


def shown(value: Any, limit: int = 40) -> str:
    """A value as JSON text for a reason, shortened; non-ASCII and control characters escaped."""
    if isinstance(value, float) and not math.isfinite(value):
        text = repr(value)
    else:
        try:
            text = json.dumps(value)
        except (ValueError, OverflowError):
            text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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


def finite_number(value: Any) -> bool:
    """A JSON number that is finite as a float64 (an integer too long for one is not)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _check_feature(where: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadEventError(f"{where} must be a number, got {_kind(value)} {shown(value)}", "InvalidFeature")
    if not finite_number(value):
        raise BadEventError(
            f"{where} must be a finite number that fits a float64, got {shown(value)}", "InvalidFeature"
        )


def diagnose(
    value: bytes, parse_error: str | None = None, answers: bool = False, named: bool = False
) -> BadEventError:
    """The first problem of a value the fast path refused, in words."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as error:
        return BadEventError(
            f"the value is not valid UTF-8 (byte 0x{value[error.start]:02x} at position {error.start})",
            "InvalidUtf8",
        )
    if parse_error is not None and parse_error.startswith("Detected duplicate key"):
        detail = parse_error.removeprefix("Detected duplicate key").strip()
        return BadEventError(
            f"a key appears twice in one object: {detail} (a key may appear once)", "DuplicateKey"
        )
    try:
        event = json.loads(text)  # NaN and Infinity parse here, so the checks below can name them
    except (ValueError, RecursionError) as error:
        reason = str(error)
        if "integer string conversion" in reason:
            return BadEventError("the value holds an integer of more than 4300 digits", "InvalidNumber")
        return BadEventError(f"the value is not valid JSON: {reason}", "InvalidJson")
    try:
        _check_structure(event, answers, named)
    except BadEventError as bad:
        return bad
    if parse_error is not None:  # JSON that Python reads but the strict parser does not
        text_of = _lone_surrogate(event)
        if text_of is not None:
            return BadEventError(
                f"the value is not valid JSON text: {shown(text_of)} escapes a lone surrogate, "
                "which is not Unicode", "InvalidJson",
            )  # fmt: skip
        return BadEventError(f"the value is not valid JSON: {parse_error}", "InvalidJson")
    return BadEventError("the value does not match the input event schema", "InvalidEvent")


def _lone_surrogate(value: Any) -> str | None:
    """The first string (a key or a value) in ``value`` that holds a lone surrogate, if any; walked
    with a stack, as deep as the parser went, without recursion."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return item
        elif isinstance(item, dict):
            for key, inner in reversed(item.items()):
                stack += (inner, key)
        elif isinstance(item, list):
            stack += reversed(item)
    return None


def _check_structure(event: Any, answers: bool = False, named: bool = False) -> None:
    if not isinstance(event, dict):
        raise BadEventError(f"the value must be a JSON object, got {_kind(event)}", "InvalidEvent")
    if event.get("features") is None and (answers or "features" not in event):
        if not answers:
            raise BadEventError('the event has no "features"', "MissingFeatures")
        if event.get("label") is None:
            raise BadEventError('an answer (no "features") needs a "label"', "InvalidAnswer")
        if event.get("id") is None:
            raise BadEventError('an answer (no "features") needs the "id" of its question', "InvalidAnswer")
    features = event.get("features", {})
    if features is None and answers:  # an answer: its label and id are checked below
        features = {}
    if named and not isinstance(features, dict):
        raise BadEventError(
            f'"features" must be an object by name (--features open or hashed), got {_kind(features)}',
            "InvalidFeatures",
        )
    if isinstance(features, dict):
        for name, feature in features.items() if not named else ():
            _check_feature(f"feature {shown(name)}", feature)
    elif isinstance(features, list):
        for position, feature in enumerate(features):
            _check_feature(f"feature {position}", feature)
    else:
        raise BadEventError(
            f'"features" must be an object or an array, got {_kind(features)}', "InvalidFeatures"
        )
    label = event.get("label")
    if label is not None and not isinstance(label, bool) and not finite_number(label):
        raise BadEventError(
            f'"label" must be a number, a boolean or null, got {shown(label)}', "InvalidLabel"
        )
    event_id = event.get("id")
    if event_id is not None and (isinstance(event_id, bool) or not isinstance(event_id, str | int)):
        raise BadEventError(f'"id" must be a string or an integer, got {_kind(event_id)}', "InvalidId")
    ts = event.get("ts")
    if ts is not None and not isinstance(ts, str):
        raise BadEventError(f'"ts" must be a string, got {_kind(ts)}', "InvalidTimestamp")
