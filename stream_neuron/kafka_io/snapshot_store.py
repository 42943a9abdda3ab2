"""Reading the newest snapshot of a model from the compacted model topic."""

from __future__ import annotations

from dataclasses import dataclass

from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.topic_reader import read_topic


@dataclass(frozen=True)
class StoredSnapshot:
    """The newest record keyed by the model's name: ``value`` is ``None`` for a tombstone (someone
    deleted the model); no record at all is a new model (:func:`load_snapshot` returns ``None``)."""

    value: bytes | None
    topic: str

    @property
    def deleted(self) -> bool:
        return self.value is None


def load_snapshot(
    connection: Connection, model_topic: str, model_name: str, timeout_s: float = 60.0
) -> StoredSnapshot | None:
    """The last committed record keyed ``model_name`` (``None`` when the model is new)."""
    key = model_name.encode()
    latest: StoredSnapshot | None = None
    for record_key, value in read_topic(connection, model_topic, f"{model_name}-snapshot-reader", timeout_s):
        if record_key == key:
            latest = StoredSnapshot(value, model_topic)
    return latest
