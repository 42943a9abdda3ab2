"""What the processor publishes must fit where it goes: record sizes against each output topic's limit,
and dead letters cut down to fit theirs.

A Kafka topic refuses a record batch larger than its ``max.message.bytes``. A record that cannot be
published would stop the stream at every restart, so the processor checks sizes before it publishes:
a prediction that would not fit becomes a dead letter, and a dead letter that would not fit is
truncated (its headers say so, and how large the original was).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from json.encoder import encode_basestring_ascii

import numpy as np
import orjson
from numpy.typing import NDArray

from stream_neuron.contracts import (
    ERROR_CLASS_HEADER,
    ERROR_REASON_HEADER,
    NULL_FIELDS_HEADER,
    ORIGINAL_BYTES_HEADER,
    SOURCE_OFFSET_HEADER,
    SOURCE_PARTITION_HEADER,
    SOURCE_TOPIC_HEADER,
    TRUNCATED_HEADER,
)
from stream_neuron.decode import BadEventError
from stream_neuron.neuron.accel import load_compiled
from stream_neuron.neuron.numeric import FloatArray
from stream_neuron.records import EventRef, Headers, InputRecord, OutputRecord

compiled_wire = load_compiled("stream_neuron._events")

# A batch's own framing (61 bytes in format v2) and one record's varints, rounded up.
BATCH_OVERHEAD_BYTES = 96
HEADER_OVERHEAD_BYTES = 12
# Kafka's default max.message.bytes, for topics whose limit is not known.
DEFAULT_LIMIT_BYTES = 1_048_588


@dataclass(frozen=True)
class OutputLimits:
    """The largest record (batch) each output topic accepts, in bytes."""

    predictions: int = DEFAULT_LIMIT_BYTES
    dead_letters: int = DEFAULT_LIMIT_BYTES
    metrics: int = DEFAULT_LIMIT_BYTES
    model: int = DEFAULT_LIMIT_BYTES

    @property
    def smallest(self) -> int:
        return min(self.predictions, self.dead_letters, self.metrics, self.model)


def record_bytes(key: bytes | None, value: bytes | None, headers: Headers) -> int:
    """An upper bound of a record's size in a batch of its own."""
    size = BATCH_OVERHEAD_BYTES + len(key or b"") + len(value or b"")
    for name, header_value in headers:
        size += HEADER_OVERHEAD_BYTES + len(name.encode()) + len(header_value or b"")
    return size


def header_text(text: str) -> bytes:
    """A header value from text that may hold anything a producer sent (a lone surrogate included)."""
    return text.encode("utf-8", "backslashreplace")


def dead_letter(topic: str, record: InputRecord, reason: str, error_class: str, limit: int) -> OutputRecord:
    """The input record as it came (key, value, headers) plus why and where from, cut to ``limit``:
    first the value, then the original headers, then the key, each noted in ``TRUNCATED_HEADER``."""
    ours: Headers = [
        (ERROR_REASON_HEADER, header_text(reason)),
        (ERROR_CLASS_HEADER, error_class.encode()),
        (SOURCE_TOPIC_HEADER, header_text(record.topic)),
        (SOURCE_PARTITION_HEADER, str(record.partition).encode()),
        (SOURCE_OFFSET_HEADER, str(record.offset).encode()),
    ]
    key, value, original = record.key, record.value, record.headers
    if key is None and value is None:  # a record needs one of them to be sent at all
        value = b""
        ours.append((NULL_FIELDS_HEADER, b"key, value"))
    if record_bytes(key, value, [*original, *ours]) <= limit:
        return OutputRecord(topic, key, value, [*original, *ours], record)
    cut: list[str] = []
    size = len(value or b"")
    ours.append((ORIGINAL_BYTES_HEADER, str(size).encode()))
    ours.append((TRUNCATED_HEADER, b"value, headers, key"))  # a placeholder of the longest wording
    for part in ("value", "headers", "key"):
        excess = record_bytes(key, value, [*original, *ours]) - limit
        if excess <= 0:
            break
        cut.append(part)
        if part == "value" and value:
            value = value[: max(len(value) - excess, 0)]
        elif part == "key" and key:
            key = key[: max(len(key) - excess, 0)]
        elif part == "headers":
            original = []
    ours[-1] = (TRUNCATED_HEADER, ", ".join(cut).encode())
    return OutputRecord(topic, key, value, [*original, *ours], record)


# The JSON of the labels and predicted classes a model has (any other integral label: int()).
_CLASS_TEXT = {0.0: "0", 1.0: "1", -1.0: "-1"}


def prediction_records(
    topic: str,
    refs: Sequence[EventRef],
    predicted: FloatArray,
    probabilities: FloatArray | None,
    scores: FloatArray,
    versions: NDArray[np.int64],
    labels: FloatArray,
    candidates: list[str] | None = None,
) -> list[OutputRecord]:
    """One prediction per scored row, keyed like its input (``probabilities``: ``None`` for a model
    without them). ``candidates``: when candidates race, the members naming the candidate each row
    was published from (``Candidates.published_by``). The values come from the compiled writer when
    it is built, else from :func:`prediction_values`, the reference it is tested equal to."""
    if compiled_wire is not None:
        floats = [
            None if a is None else np.ascontiguousarray(a, dtype=np.float64) for a in (probabilities, scores)
        ]
        return compiled_wire.prediction_records(  # type: ignore[no-any-return]
            OutputRecord,
            topic,
            refs if type(refs) is list else list(refs),
            np.ascontiguousarray(predicted, dtype=np.float64),
            *floats,
            np.ascontiguousarray(versions, dtype=np.int64),
            np.ascontiguousarray(labels, dtype=np.float64),
            candidates,
            encode_basestring_ascii,
            # Each float's shortest round-trip digits, by orjson's Ryu: the writer lays them out as
            # repr() does (repr's own digit search is most of a prediction's cost otherwise).
            *(None if a is None else orjson.dumps(a, option=orjson.OPT_SERIALIZE_NUMPY) for a in floats),
        )
    values = prediction_values(refs, predicted, probabilities, scores, versions, labels, candidates)
    pairs = zip(refs, values, strict=True)
    return [OutputRecord(topic, ref.key, value, [], ref.record) for ref, value in pairs]


def prediction_values(
    refs: Sequence[EventRef],
    predicted: FloatArray,
    probabilities: FloatArray | None,
    scores: FloatArray,
    versions: NDArray[np.int64],
    labels: FloatArray,
    candidates: list[str] | None = None,
) -> list[bytes]:
    """The predictions' JSON, by one template per record rather than json.dumps of a dict (most of
    the per-event cost otherwise). repr() of a finite float is valid JSON and round-trips exactly
    (rows the model refused never get here)."""
    quote, classes = encode_basestring_ascii, _CLASS_TEXT
    quoted: dict[str, str] = {}
    values: list[bytes] = []
    append = values.append
    n = len(refs)
    probability_texts = map(repr, probabilities.tolist()) if probabilities is not None else repeat("null", n)
    named = candidates if candidates is not None else repeat("", n)
    columns = (predicted.tolist(), probability_texts, scores.tolist(), versions.tolist(), labels.tolist())
    for ref, cls, probability, score, version, label, candidate in zip(refs, *columns, named, strict=True):
        event_id = "null" if ref.event_id is None else quote(ref.event_id)
        label_text = "null" if label != label else classes.get(label) or int(label)
        topic_json = quoted.get(ref.topic) or quoted.setdefault(ref.topic, quote(ref.topic))
        append(
            (
                f'{{"prediction": {classes.get(cls) or int(cls)}, "probability": {probability}, '
                f'"score": {score!r}, "label": {label_text}, "model_version": {version}, "id": {event_id}, '
                f'"source": {{"topic": {topic_json}, "partition": {ref.partition}, "offset": {ref.offset}}}'
                f"{candidate}}}"
            ).encode()
        )
    return values


# A prediction's JSON around its id: the fields, two floats, counters, the source (topic apart).
PREDICTION_FIXED_BYTES = 400


class PredictionBudget:
    """Whether an event's prediction fits the predictions topic: it carries the event's id (escaped:
    up to 6 bytes a character) and key. Called with (id, key); raises :class:`BadEventError`."""

    def __init__(self, limit: int, topic: str) -> None:
        self.limit = limit
        self.budget = limit - PREDICTION_FIXED_BYTES - 6 * len(topic)

    def __call__(self, event_id: str | None, key: bytes | None) -> None:
        budget = self.budget - len(key or b"")
        if 6 * len(event_id or "") <= budget:
            return
        size = len(encode_basestring_ascii(event_id)) if event_id is not None else 0
        if size > budget:
            total = size + PREDICTION_FIXED_BYTES + len(key or b"")
            raise BadEventError(
                f"its prediction would be about {total:,} bytes, over the predictions topic's "
                f"max.message.bytes of {self.limit:,} (a long id or key)",
                "PredictionTooLarge",
            )
