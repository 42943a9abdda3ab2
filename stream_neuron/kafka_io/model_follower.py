"""The newest snapshot of one model on the compacted model topic, followed as the trainer writes it.

``read_committed``: an exactly-once trainer's snapshots count once their transaction commits. The
consumer fetches with a short wait, so a new snapshot is seen within about a tenth of a second of
being committed, at the next call of :meth:`ModelFollower.newer`.
"""

from __future__ import annotations

import time

from stream_neuron.kafka_io.backends import backend
from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.errors import StartupError, TopicMissingError

FETCH_WAIT_MS = 100
READ_TIMEOUT_S = 60.0


class ModelFollower:
    """Reads ``model_topic`` to its end at start (:attr:`latest`), then hands newer records of
    ``model_name`` one call at a time (:meth:`newer`)."""

    def __init__(self, connection: Connection, model_topic: str, model_name: str, client_id: str) -> None:
        self.key = model_name.encode()
        self._tail = backend(connection).tail(connection, model_topic, client_id, FETCH_WAIT_MS)
        if not self._tail.partitions:
            self._tail.close()
            raise TopicMissingError(
                f"model topic {model_topic!r} does not exist: start `stream-neuron run` first", model_topic
            )
        self._tail.start_from_beginning()
        self.latest: bytes | None = None  # the newest value keyed by the model's name (None: none yet)
        ends = self._tail.end_offsets()
        deadline = time.monotonic() + READ_TIMEOUT_S
        while not self._tail.reached(ends):
            if time.monotonic() > deadline:
                self._tail.close()
                raise StartupError(f"timed out reading model topic {model_topic!r} to its end")
            self._take(500)

    def _take(self, timeout_ms: int) -> bool:
        """Read what arrived; True when a record of the model came with it."""
        found = False
        for record in self._tail.poll(timeout_ms):
            if record.key == self.key:
                self.latest, found = record.value, True
        return found

    def newer(self, timeout_ms: int = 0) -> bytes | None:
        """The model's newest record if one arrived since the last call (a tombstone is ``b""``)."""
        if self._take(timeout_ms):
            return self.latest if self.latest is not None else b""
        return None

    def close(self) -> None:
        self._tail.close()
