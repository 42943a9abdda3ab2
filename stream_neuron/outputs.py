"""What the processor publishes must fit where it goes: record sizes against each output topic's limit,
and dead letters cut down to fit theirs.

A Kafka topic refuses a record batch larger than its ``max.message.bytes``. A record that cannot be
published would stop the stream at every restart, so the processor checks sizes before it publishes:
a prediction that would not fit becomes a dead letter, and a dead letter that would not fit is
truncated (its headers say so, and how large the original was).
"""

from __future__ import annotations

from dataclasses import dataclass

from stream_neuron.contracts import (
    ERROR_CLASS_HEADER,
    ERROR_REASON_HEADER,
    ORIGINAL_BYTES_HEADER,
    SOURCE_OFFSET_HEADER,
    SOURCE_PARTITION_HEADER,
    SOURCE_TOPIC_HEADER,
    TRUNCATED_HEADER,
)
from stream_neuron.records import Headers, InputRecord, OutputRecord

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
