"""Reading a whole topic, from the beginning to the end it has now (snapshots, metrics)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from kafka import KafkaConsumer, TopicPartition

from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.errors import StartupError


@contextmanager
def assigned_consumer(
    connection: Connection, topic: str, client_id: str
) -> Iterator[tuple[KafkaConsumer, list[TopicPartition]]]:
    """A ``read_committed`` consumer assigned every partition of ``topic`` (none when it is missing)."""
    consumer = KafkaConsumer(
        **connection.client_config(client_id), enable_auto_commit=False, isolation_level="read_committed"
    )
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        if partitions:
            consumer.assign(partitions)
        yield consumer, partitions
    finally:
        consumer.close(autocommit=False)


class MissingTopicError(LookupError):
    """The topic to read does not exist."""


def read_topic(
    connection: Connection, topic: str, client_id: str, timeout_s: float = 60.0, required: bool = False
) -> Iterator[tuple[bytes | None, bytes | None]]:
    """(key, value) of every committed record now in ``topic``, partition by partition in order.
    A missing topic reads as empty, or raises :class:`MissingTopicError` when ``required``."""
    with assigned_consumer(connection, topic, client_id) as (consumer, partitions):
        if not partitions:
            if required:
                raise MissingTopicError(topic)
            return
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise StartupError(f"timed out reading {topic} to its end")
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    yield record.key, record.value
