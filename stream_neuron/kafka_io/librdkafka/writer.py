"""Records written and acknowledged (``acks=all``) on librdkafka: a few at a time, waited for (the
writer claim, ``fit``'s snapshot), or a stream of them (``produce``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.errors import WriteError
from stream_neuron.kafka_io.librdkafka.config import client_config
from stream_neuron.kafka_io.librdkafka.errors import described, translated
from stream_neuron.kafka_io.limits import (
    MAX_REQUEST_BYTES,
    STREAM_WRITER_BATCH_BYTES,
    STREAM_WRITER_LINGER_MS,
)


def write_records(
    connection: Connection,
    client_id: str,
    records: Sequence[tuple[str, bytes | None, bytes | None]],
    timeout_s: float,
) -> list[tuple[int, int]]:
    reports: dict[int, Any] = {}
    producer = Producer(
        {
            **client_config(connection, client_id),
            "acks": "all",
            "message.max.bytes": MAX_REQUEST_BYTES,
            "message.timeout.ms": int(timeout_s * 1000),
        }
    )
    for i, (topic, key, value) in enumerate(records):

        def delivered(error: KafkaError | None, message: Any, i: int = i) -> None:
            reports[i] = error if error is not None else (message.partition(), message.offset())

        try:
            producer.produce(topic, value, key, on_delivery=delivered)
        except (KafkaException, BufferError) as error:
            raise WriteError(described(error)) from None
    producer.flush(timeout_s + 1)
    placed = []
    for i in range(len(records)):
        report = reports.get(i)
        if report is None:
            raise WriteError(f"not acknowledged within {timeout_s:.0f} s")
        if not isinstance(report, tuple):
            raise WriteError(described(report))
        placed.append(report)
    return placed


@translated
class RdStreamWriter:
    def __init__(self, connection: Connection, client_id: str, block_s: float) -> None:
        self.failures: list[str] = []
        self._block_s = block_s
        self._producer = Producer(
            {
                **client_config(connection, client_id),
                "acks": "all",
                "linger.ms": STREAM_WRITER_LINGER_MS,
                "batch.size": STREAM_WRITER_BATCH_BYTES,
                "message.max.bytes": MAX_REQUEST_BYTES,
                "on_delivery": self._delivered,
                "delivery.report.only.error": True,
            }
        )

    def _delivered(self, error: KafkaError | None, message: Any) -> None:
        if error is not None:
            self.failures.append(described(error))

    def send(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        deadline = time.monotonic() + self._block_s
        while True:
            try:
                self._producer.produce(topic, value, key)
                self._producer.poll(0)
                return
            except BufferError:  # the client's queue is full: let it send, for a while
                if time.monotonic() > deadline:
                    raise WriteError(f"the client's queue stayed full for {self._block_s:.0f} s") from None
                self._producer.poll(0.05)
            except KafkaException as error:
                raise WriteError(described(error)) from None

    def finish(self, timeout_s: float) -> None:
        left = self._producer.flush(timeout_s)
        if left:
            self.failures.append(f"{left} records not acknowledged within {timeout_s:.0f} s")
        if self.failures:
            raise WriteError(self.failures[0])

    def abandon(self) -> None:
        """The producer goes with its last reference; its records were never acknowledged."""
