"""The output producer: every send is checked; a failed acknowledgement stops the commit."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from stream_neuron.config import Settings
from stream_neuron.kafka_io.admin import DEAD_LETTER_MAX_BYTES
from stream_neuron.kafka_io.errors import PublishError, StartupError
from stream_neuron.kafka_io.partitions import PartitionHints
from stream_neuron.kafka_io.reconnect import RECONNECT_BACKOFF_MAX_MS
from stream_neuron.records import OutputRecord


class OutputProducer:
    """Idempotent, ``acks=all`` producer. Delivery: each record at least once; :meth:`flush` raises
    :class:`PublishError` if any send since the last flush failed, so its offsets are never committed."""

    def __init__(self, settings: Settings, **overrides: Any) -> None:
        config: dict[str, Any] = {
            "bootstrap_servers": settings.bootstrap_servers,
            "client_id": f"{settings.model_name}-output",
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": 5,
            "batch_size": 256 * 1024,
            "max_request_size": DEAD_LETTER_MAX_BYTES + 1024 * 1024,
            "reconnect_backoff_max_ms": RECONNECT_BACKOFF_MAX_MS,
        }
        config.update(overrides)
        try:
            self.producer = KafkaProducer(**config)
        except KafkaError as error:
            raise StartupError(f"no Kafka broker answers at {settings.bootstrap_servers}") from error
        self._failures: list[BaseException] = []
        self._partitions = PartitionHints(self.producer)

    def _failed(self, error: BaseException) -> None:
        self._failures.append(error)

    def send(self, records: Iterable[OutputRecord]) -> None:
        send, failed, hint = self.producer.send, self._failed, self._partitions.for_topic
        for record in records:
            send(
                record.topic, value=record.value, key=record.key, headers=record.headers or None,
                partition=hint(record.topic),
            ).add_errback(failed)  # fmt: skip

    def flush(self, timeout_s: float = 60.0) -> None:
        self.producer.flush(timeout=timeout_s)
        if self._failures:
            error = self._failures[0]
            self._failures.clear()
            raise PublishError(f"the broker did not acknowledge an output record: {error!r}")

    def close(self, timeout_s: float = 10.0) -> None:
        self.producer.close(timeout=timeout_s)
