"""Plain records crossing the boundary between the pure processor and the Kafka I/O layer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

Headers = list[tuple[str, bytes]]


class InputRecord(NamedTuple):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp_ms: int = -1  # the record's Kafka timestamp (-1: none)


class OutputRecord(NamedTuple):
    """A record to publish; ``origin`` is the input record it answers (a prediction's event), so a
    record the broker refuses can be dead-lettered as that input."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers
    origin: InputRecord | None = None


class EventRef(NamedTuple):
    """Which input record a scored row is: it rides along with the row through the learner, and its
    prediction is keyed and sourced from it. ``record`` is the input record itself, for a dead letter
    should the model refuse the row (``None`` for a row restored from a snapshot)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    event_id: str | None
    record: InputRecord | None = None
    # Delayed labels: the question this row asks (unlabelled) or answers (labelled; its features and
    # the score it was given are the question's).
    asked: Any = None


@dataclass
class Emitted:
    """What one processor step asks the I/O layer to publish, in this order."""

    predictions: list[OutputRecord] = field(default_factory=list)
    dead_letters: list[OutputRecord] = field(default_factory=list)
    metrics: list[OutputRecord] = field(default_factory=list)

    def extend(self, other: Emitted) -> None:
        self.predictions.extend(other.predictions)
        self.dead_letters.extend(other.dead_letters)
        self.metrics.extend(other.metrics)

    def outputs(self) -> list[OutputRecord]:
        return [*self.predictions, *self.dead_letters, *self.metrics]
