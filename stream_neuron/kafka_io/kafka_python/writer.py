"""Records written and acknowledged (``acks=all``) on kafka-python: a few at a time, waited for (the
writer claim, ``fit``'s snapshot), or a stream of them (``produce``)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from kafka.errors import KafkaError

from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.errors import WriteError
from stream_neuron.kafka_io.kafka_python.config import client_config, new_producer
from stream_neuron.kafka_io.kafka_python.errors import described, translated
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
    config = {
        **client_config(connection, client_id),
        "acks": "all",
        "max_request_size": MAX_REQUEST_BYTES,
        "max_block_ms": int(timeout_s * 1000),
    }
    try:
        producer = new_producer(connection, config)
    except KafkaError as error:
        raise WriteError(
            f"no Kafka broker answers at {connection.bootstrap_servers} ({described(error)})"
        ) from None
    try:
        futures = [producer.send(topic, key=key, value=value) for topic, key, value in records]
        acknowledged = [future.get(timeout=timeout_s) for future in futures]
    except KafkaError as error:
        raise WriteError(described(error)) from None
    finally:
        with contextlib.suppress(KafkaError):  # what was not acknowledged is reported above
            producer.close(timeout=5)
    return [(sent.partition, sent.offset) for sent in acknowledged]


@translated
class KafkaPythonStreamWriter:
    def __init__(self, connection: Connection, client_id: str, block_s: float) -> None:
        self.failures: list[str] = []
        config = {
            **client_config(connection, client_id),
            "acks": "all",
            "linger_ms": STREAM_WRITER_LINGER_MS,
            "batch_size": STREAM_WRITER_BATCH_BYTES,
            "max_request_size": MAX_REQUEST_BYTES,
            "max_block_ms": int(block_s * 1000),
        }
        self._producer = new_producer(connection, config)

    def _failed(self, error: BaseException) -> None:
        self.failures.append(described(error))

    def send(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        try:
            self._producer.send(topic, key=key, value=value).add_errback(self._failed)
        except KafkaError as error:
            raise WriteError(described(error)) from None

    def finish(self, timeout_s: float) -> None:
        try:
            self._producer.flush(timeout=timeout_s)
        except KafkaError as error:
            self.failures.append(described(error))
        try:
            self._producer.close(timeout=5)
        except KafkaError as error:
            self.failures.append(described(error))
        if self.failures:
            raise WriteError(self.failures[0])

    def abandon(self) -> None:
        with contextlib.suppress(KafkaError):  # abandoned: the caller reports its records as not sent
            self._producer.close(timeout=0)
