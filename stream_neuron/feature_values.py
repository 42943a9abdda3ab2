"""What every feature encoder checks of a feature (its name's and string value's length, its value's
kind and size), the bound of what a model may take, and the compiled fast paths (``_encode.c``)."""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

from stream_neuron.decode import BadEventError, shown
from stream_neuron.neuron.accel import load_compiled

DEFAULT_MAX_NAME_BYTES = 256
Entries = tuple[list[int], list[float], list[bool]]
RawRows = tuple[bytearray, bytearray, bytearray]
"""A chunk's entries as raw int64 indices, float64 values and bool flags (``row_sink.SparseSink``)."""
"""One event's features: indices (or buckets), values, and whether each is a number to scale."""

compiled_encoder: ModuleType | None = load_compiled("stream_neuron._encode")


def too_long(text: str, max_bytes: int) -> bool:
    """More than ``max_bytes`` in UTF-8 (a character is 4 bytes at most: most texts need no encoding)."""
    return len(text) * 4 > max_bytes and len(text.encode("utf-8", "surrogatepass")) > max_bytes


def length_refusal(name: str, value: Any, max_bytes: int) -> BadEventError:
    """The refusal of a feature whose name, or string value, is over ``max_bytes``."""
    if too_long(name, max_bytes):
        what, text = "the feature name", name
    else:
        what, text = f"the value of feature {shown(name)}", value
    size = len(text.encode("utf-8", "surrogatepass"))
    return BadEventError(
        f"{what} {shown(text)} is {size} bytes, over the limit of {max_bytes} (--max-feature-name-bytes)",
        "FeatureNameTooLong",
    )


def unencodable(text: str) -> bool:
    """A text that is no UTF-8 (a lone surrogate: JSON decoding refuses them, the Python API may not)."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def text_refusal(name: str, text: str) -> BadEventError:
    what = "the feature name" if text is name else f"the value of feature {shown(name)}"
    return BadEventError(f"{what} {shown(text)} is not valid Unicode (a lone surrogate)", "InvalidFeature")


def _kind(value: Any) -> str:
    """What a refused value is, and the value itself when it says more than its kind."""
    if value is None:
        return "null"
    return f"{'an object' if isinstance(value, dict) else 'an array'} {shown(value)}"


def number_of(name: str, value: Any) -> float:
    """A feature's number, or the refusal naming it (an integer too large for a float64 included)."""
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise BadEventError(
            f"feature {shown(name)} must be a finite number that fits a float64, got {shown(value)}",
            "InvalidFeature",
        )
    return number


def refused_value(name: str, value: Any) -> BadEventError:
    return BadEventError(
        f"feature {shown(name)} must be a number, a string or a boolean, got {_kind(value)}",
        "InvalidFeature",
    )


class ValueBound:
    """The largest magnitude of a value a model takes, and the dead letter's reason for one beyond it
    (the processor's ``--max-feature-abs``, or what the scaler's statistics hold). A growing encoder
    checks it before an event takes a new name or bucket: an event the model will not learn must not
    use up the vocabulary or the budget of buckets. Without one (``math.inf``) nothing is refused here.

    >>> ValueBound(10.0, "too far").check([1.0, -10.0])
    >>> ValueBound(10.0, "too far").check([1.0, -10.5])
    Traceback (most recent call last):
    stream_neuron.decode.BadEventError: too far
    """

    def __init__(self, limit: float = math.inf, reason: str = "") -> None:
        self.limit, self.reason = limit, reason

    def check(self, values: list[float]) -> None:
        """Nothing, or the :class:`BadEventError` of a value beyond the bound (an infinite sum too)."""
        limit = self.limit
        if any(not abs(value) <= limit for value in values):
            raise BadEventError(self.reason, "FeatureOutOfRange")


class FeatureBudget:
    """How many features a model may take: ``--max-features``, and the bytes its snapshot has for
    them (each costs ``bytes_per_feature`` plus its name's JSON, when it has one), so a growing model
    refuses an event rather than ever writing a snapshot the model topic would refuse."""

    def __init__(self, max_features: int, max_bytes: int | None = None, bytes_per_feature: int = 0) -> None:
        self.max_features, self.max_bytes, self.bytes_per_feature = max_features, max_bytes, bytes_per_feature
        self.features, self.bytes = 0, 0

    def cost(self, name: str | None) -> int:
        return self.bytes_per_feature + (0 if name is None else len(name.encode()) + 4)

    def refusal(self, new: int, new_bytes: int, first: str) -> BadEventError | None:
        """Why ``new`` features of ``new_bytes`` do not fit (``None``: they do)."""
        if self.features + new > self.max_features:
            return BadEventError(
                f"the event adds {new} new feature(s) ({first} first) to the {self.features} known, over "
                f"the limit of {self.max_features} (--max-features)",
                "TooManyFeatures",
            )
        if self.max_bytes is not None and self.bytes + new_bytes > self.max_bytes:
            return BadEventError(
                f"the event adds {new} new feature(s) ({first} first) to the {self.features} known, and "
                f"the model's snapshot would outgrow the model topic's {self.max_bytes:,} bytes for "
                "features (raise its max.message.bytes, or lower --max-features)",
                "TooManyFeatures",
            )
        return None

    def room(self, cost_each: int) -> int:
        """How many more features of ``cost_each`` bytes fit (what :meth:`refusal` would allow)."""
        room = self.max_features - self.features
        if self.max_bytes is not None and cost_each > 0:
            room = min(room, (self.max_bytes - self.bytes) // cost_each)
        return max(room, 0)

    def take(self, new: int, new_bytes: int) -> None:
        self.features += new
        self.bytes += new_bytes
