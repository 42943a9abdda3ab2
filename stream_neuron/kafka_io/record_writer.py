"""A few records written and acknowledged (``acks=all``) before going on, on either Kafka client: the
writer claim, the snapshot ``fit`` writes. Not for streams (one producer per call)."""

from __future__ import annotations

import time
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.limits import MAX_REQUEST_BYTES
from stream_neuron.kafka_io.rd_input import rdkafka


class WriteError(Exception):
    """A record was not acknowledged (the client's error in the message)."""


def write_records(
    connection: Connection, client_id: str, records: list[tuple[str, bytes | None, bytes]], timeout_s: float
) -> list[tuple[int, int]]:
    """Write ``records`` (topic, key, value) in order; their (partition, offset), once all are
    acknowledged; :class:`WriteError` if one is not within ``timeout_s``."""
    if connection.client == "confluent":
        return _rd_write(connection, client_id, records, timeout_s)
    try:
        producer = KafkaProducer(
            **connection.client_config(client_id), acks="all", max_request_size=MAX_REQUEST_BYTES
        )
    except KafkaError as error:
        raise WriteError(f"no Kafka broker answers at {connection.bootstrap_servers} ({error})") from None
    try:
        futures = [producer.send(topic, key=key, value=value) for topic, key, value in records]
        acknowledged = [future.get(timeout=timeout_s) for future in futures]
    except KafkaError as error:
        raise WriteError(str(error)) from None
    finally:
        producer.close(timeout=5)
    return [(sent.partition, sent.offset) for sent in acknowledged]


def _rd_write(
    connection: Connection, client_id: str, records: list[tuple[str, bytes | None, bytes]], timeout_s: float
) -> list[tuple[int, int]]:
    kafka = rdkafka()
    reports: dict[int, Any] = {}
    producer = kafka.Producer(
        {
            **connection.rdkafka_config(client_id),
            "acks": "all",
            "message.max.bytes": MAX_REQUEST_BYTES,
            "message.timeout.ms": int(timeout_s * 1000),
        }
    )
    for i, (topic, key, value) in enumerate(records):

        def delivered(error: Any, message: Any, i: int = i) -> None:
            reports[i] = error if error is not None else (message.partition(), message.offset())

        try:
            producer.produce(topic, value, key, on_delivery=delivered)
        except (kafka.KafkaException, BufferError) as error:
            raise WriteError(str(error)) from None
    producer.flush(timeout_s + 1)
    placed = []
    for i in range(len(records)):
        report = reports.get(i)
        if report is None:
            raise WriteError(f"not acknowledged within {timeout_s:.0f} s")
        if not isinstance(report, tuple):
            raise WriteError(f"{report.name()}: {report.str()}")
        placed.append(report)
    return placed


class StreamWriter:
    """Many records sent without waiting for each (``produce``): failures are collected and reported
    by :meth:`finish`, which waits for every acknowledgement. A send that cannot be queued within
    ``block_s`` (no broker) raises :class:`WriteError`."""

    def __init__(self, connection: Connection, client_id: str, block_s: float = 15.0) -> None:
        self.failures: list[str] = []
        self._block_s = block_s
        self._rd = connection.client == "confluent"
        if self._rd:
            self._producer: Any = rdkafka().Producer(
                {
                    **connection.rdkafka_config(client_id),
                    "acks": "all",
                    "linger.ms": 10,
                    "on_delivery": self._delivered,
                    "delivery.report.only.error": True,
                }
            )
            return
        try:
            self._producer = KafkaProducer(
                **connection.client_config(client_id), acks="all", linger_ms=10, batch_size=256 * 1024,
                max_block_ms=int(block_s * 1000),
            )  # fmt: skip
        except KafkaError as error:
            raise WriteError(f"no Kafka broker answers at {connection.bootstrap_servers} ({error})") from None

    def _failed(self, error: BaseException) -> None:
        self.failures.append(str(error))

    def _delivered(self, error: Any, message: Any) -> None:
        if error is not None:
            self.failures.append(f"{error.name()}: {error.str()}")

    def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        if not self._rd:
            try:
                self._producer.send(topic, key=key, value=value).add_errback(self._failed)
            except KafkaError as error:
                raise WriteError(str(error)) from None
            return
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
            except rdkafka().KafkaException as error:
                raise WriteError(str(error)) from None

    def finish(self, timeout_s: float) -> None:
        """Wait for every record; :class:`WriteError` with the first failure, if any."""
        if self._rd:
            left = self._producer.flush(timeout_s)
            if left:
                self.failures.append(f"{left} records not acknowledged within {timeout_s:.0f} s")
        else:
            try:
                self._producer.flush(timeout=timeout_s)
            except KafkaError as error:
                self.failures.append(str(error))
            self._producer.close(timeout=5)
        if self.failures:
            raise WriteError(self.failures[0])

    def abandon(self) -> None:
        if not self._rd:
            self._producer.close(timeout=0)
