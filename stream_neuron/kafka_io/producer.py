"""The output producers' shared configuration and send loop, and the at-least-once producer.

Delivery: :class:`OutputProducer` sends each record at least once (idempotent, ``acks=all``); a
failed acknowledgement surfaces at the next :meth:`OutputProducer.flush`, before anything it covers
is committed. The transactional producer (``transactions.py``) shares :func:`producer_config` and
:func:`send_records`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.errors import PublishError, StartupError
from stream_neuron.kafka_io.limits import (
    MAX_REQUEST_BYTES,
    PRODUCER_BATCH_BYTES,
    PRODUCER_LINGER_MS,
    RECONNECT_BACKOFF_MAX_MS,
)
from stream_neuron.kafka_io.partitions import PartitionHints
from stream_neuron.records import OutputRecord


def producer_config(connection: Connection, client_id: str, **overrides: Any) -> dict[str, Any]:
    """``acks=all`` with batching sized for a poll's outputs and requests for the largest record."""
    config: dict[str, Any] = {
        **connection.client_config(client_id),
        "acks": "all",
        "linger_ms": PRODUCER_LINGER_MS,
        "batch_size": PRODUCER_BATCH_BYTES,
        "max_request_size": MAX_REQUEST_BYTES,
        "reconnect_backoff_max_ms": RECONNECT_BACKOFF_MAX_MS,
    }
    config.update(overrides)
    return config


def new_producer(connection: Connection, config: dict[str, Any]) -> KafkaProducer:
    try:
        return KafkaProducer(**config)
    except KafkaError as error:
        raise StartupError(f"no Kafka broker answers at {connection.bootstrap_servers}") from error


def send_records(
    producer: KafkaProducer,
    records: Iterable[OutputRecord],
    hints: PartitionHints,
    failed: Callable[[BaseException], Any],
) -> None:
    """Hand ``records`` to the producer in order; ``failed`` hears of each one the broker refuses."""
    send, hint = producer.send, hints.for_topic
    for record in records:
        send(
            record.topic, value=record.value, key=record.key, headers=record.headers or None,
            partition=hint(record.topic),
        ).add_errback(failed)  # fmt: skip


class OutputProducer:
    """The idempotent, ``acks=all`` producer of at-least-once runs."""

    def __init__(self, connection: Connection, client_id: str) -> None:
        config = producer_config(connection, client_id, enable_idempotence=True)
        self.producer = new_producer(connection, config)
        self._failures: list[BaseException] = []
        self._hints = PartitionHints(self.producer)

    def send(self, records: Iterable[OutputRecord]) -> None:
        send_records(self.producer, records, self._hints, self._failures.append)

    def flush(self, timeout_s: float = 60.0) -> None:
        """Wait for every record sent so far; :class:`PublishError` if any was refused."""
        self.producer.flush(timeout=timeout_s)
        if self._failures:
            error = self._failures[0]
            self._failures.clear()
            raise PublishError(f"the broker did not acknowledge an output record: {error!r}")

    def close(self, timeout_s: float = 10.0) -> None:
        self.producer.close(timeout=timeout_s)
