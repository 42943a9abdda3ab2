"""Reading a whole topic, from the beginning to the end it has now (snapshots, metrics)."""

from __future__ import annotations

import time
from collections.abc import Iterator

from stream_neuron.kafka_io.backends import backend
from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.errors import TimedOutError, TopicMissingError

FETCH_WAIT_MS = 500


def read_topic(
    connection: Connection, topic: str, client_id: str, timeout_s: float = 60.0, required: bool = False
) -> Iterator[tuple[bytes | None, bytes | None]]:
    """(key, value) of every committed record now in ``topic``, partition by partition in order.
    A missing topic reads as empty, or raises :class:`TopicMissingError` when ``required``."""
    tail = backend(connection).tail(connection, topic, client_id, FETCH_WAIT_MS)
    try:
        if not tail.partitions:
            if required:
                raise TopicMissingError(f"topic {topic!r} does not exist", topic)
            return
        tail.start_from_beginning()
        ends = tail.end_offsets()
        deadline = time.monotonic() + timeout_s
        while not tail.reached(ends):
            if time.monotonic() > deadline:
                raise TimedOutError(f"timed out reading {topic} to its end")
            for record in tail.poll(500):
                yield record.key, record.value
    finally:
        tail.close()
