"""The output producers' shared configuration and send loop, and the at-least-once producer.

Delivery: :class:`OutputProducer` sends each record at least once (idempotent, ``acks=all``); a
failed acknowledgement surfaces at the next :meth:`OutputProducer.flush`, before anything it covers
is committed. The transactional producer (``transactions.py``) shares :func:`producer_config` and
:func:`send_records`.

A record the broker refuses for what it is (too large, invalid) is handed back as :class:`Refused`
so the caller can dead-letter what it answers; any other failure (a lost broker, a deleted topic, a
denied write) is a :class:`PublishError` naming the topic.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, NamedTuple

from kafka import KafkaProducer
from kafka.errors import (
    CorruptRecordError,
    InvalidRecordError,
    InvalidTimestampError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
)

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

log = logging.getLogger(__name__)

FLUSH_WAIT_S = 10.0
BATCH_MARGIN_BYTES = 1024
RETRY_WAIT_S = 1.0

RECORD_ERRORS = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    InvalidRecordError,
    CorruptRecordError,
    InvalidTimestampError,
)
"""The broker (or the client, before sending) refuses the record itself: sending it again cannot help."""


class Refused(NamedTuple):
    record: OutputRecord
    error: BaseException


def refused_for_itself(error: BaseException) -> bool:
    return isinstance(error, RECORD_ERRORS)


def describe_failure(record: OutputRecord, error: BaseException) -> str:
    return f"publishing to {record.topic!r} failed: {error.__class__.__name__}: {error}"


def producer_config(
    connection: Connection,
    client_id: str,
    compression: str = "none",
    smallest_topic_limit: int = PRODUCER_BATCH_BYTES,
    **overrides: Any,
) -> dict[str, Any]:
    """``acks=all`` with batching sized for a poll's outputs and requests for the largest record. A
    batch never outgrows the output topic that takes the smallest records (a topic refuses a batch
    larger than its max.message.bytes, however small its records)."""
    config: dict[str, Any] = {
        **connection.client_config(client_id),
        "compression_type": None if compression == "none" else compression,
        "acks": "all",
        "linger_ms": PRODUCER_LINGER_MS,
        "batch_size": max(min(PRODUCER_BATCH_BYTES, smallest_topic_limit - BATCH_MARGIN_BYTES), 1024),
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
    failed: Callable[[OutputRecord, BaseException], Any],
    sent: list[Any] | None = None,
) -> None:
    """Hand ``records`` to the producer in order; ``failed(record, error)`` hears of each one that is
    not delivered, whether the client refuses it at once or the broker later. Each record's future is
    appended to ``sent`` when given."""
    send, hint = producer.send, hints.for_topic
    for record in records:
        try:
            future = send(
                record.topic, value=record.value, key=record.key, headers=record.headers or None,
                partition=hint(record.topic),
            )  # fmt: skip
        except RECORD_ERRORS as error:  # larger than max_request_size, say: refused before sending
            failed(record, error)
            continue
        future.add_errback(partial(failed, record))
        if sent is not None:
            sent.append(future)


def await_sent(sent: list[Any], timeout_s: float) -> bool:
    """Wait until every future in ``sent`` is done (its outcome told to its callbacks); False when
    ``timeout_s`` passes first. The undone ones stay in ``sent``.

    This waits on the records' own futures rather than ``KafkaProducer.flush``: kafka-python 3.0's
    flush raises "Future not done" for ever once it has split a batch the broker found too large (the
    old batch's future is left undone), while each record's future is rebound to its new batch."""
    deadline = time.monotonic() + timeout_s
    while sent:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        try:
            sent[-1].get(timeout=remaining)
        except KafkaTimeoutError:
            return False
        except KafkaError:
            pass  # told to the errback
        sent.pop()
    return True


class OutputProducer:
    """The ``acks=all`` producer of at-least-once runs.

    Not idempotent, on purpose: kafka-python 3.0 (``TransactionManager.classify_batch_error``) puts an
    idempotent producer in a fatal state for good after one record the broker refuses for what it is
    (too large, invalid), and every later send then fails with that record's error; the Java client
    fails only that batch. Idempotence would only keep a retried batch from being written twice, and
    at least once allows such repeats, so it is off (its in-flight requests stay at one per
    connection to keep each partition's records in order across retries).

    While the broker is away, :meth:`flush` keeps waiting and sends again what timed out (at least
    once allows the repeats): a pause of the broker never ends the run. ``check(topics)`` is asked
    during such a wait and raises :class:`PublishError` when a topic is gone for good (deleted);
    ``stopping()`` ends the wait (then nothing after the last checkpoint is committed)."""

    def __init__(
        self,
        connection: Connection,
        client_id: str,
        compression: str = "none",
        smallest_topic_limit: int = PRODUCER_BATCH_BYTES,
        check: Callable[[set[str]], None] = lambda topics: None,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        config = producer_config(
            connection,
            client_id,
            compression,
            smallest_topic_limit,
            enable_idempotence=False,
            max_in_flight_requests_per_connection=1,
        )
        self.producer = new_producer(connection, config)
        self.check = check
        self.stopping = stopping
        self._failures: list[Refused] = []
        self._sent: list[Any] = []  # futures of records sent since the last flush
        self._hints = PartitionHints(self.producer)

    def _failed(self, record: OutputRecord, error: BaseException) -> None:
        self._failures.append(Refused(record, error))

    def send(self, records: Iterable[OutputRecord]) -> None:
        try:
            send_records(self.producer, records, self._hints, self._failed, self._sent)
        except KafkaError as error:
            topic = next(iter(records), None)
            where = f" to {topic.topic!r}" if isinstance(topic, OutputRecord) else ""
            raise PublishError(f"publishing{where} failed: {error.__class__.__name__}: {error}") from error

    def flush(self) -> list[Refused]:
        """Wait for every record sent so far. Returns the records refused for what they are;
        :class:`PublishError` if any failed for good (nothing it covers may be committed)."""
        refused: list[Refused] = []
        waited_since: float | None = None
        while True:
            pending = not await_sent(self._sent, FLUSH_WAIT_S)  # still in flight: the broker is slow or away
            failures, self._failures = self._failures, []
            again: list[OutputRecord] = []
            for record, error in failures:
                if refused_for_itself(error):
                    refused.append(Refused(record, error))
                elif getattr(error, "retriable", False):
                    again.append(record)
                else:
                    raise PublishError(describe_failure(record, error))
            if not (pending or again):
                if waited_since is not None:
                    log.warning("the outputs were acknowledged after %.0f s", time.monotonic() - waited_since)
                return refused
            if waited_since is None:
                waited_since = time.monotonic()
                log.warning(
                    "the broker is not acknowledging the outputs: waiting (a checkpoint waits for them)"
                )
            self.check({record.topic for record in again})
            if self.stopping():
                raise PublishError(
                    "stopped while the broker was not acknowledging the outputs since the last checkpoint"
                )
            time.sleep(RETRY_WAIT_S)
            self.send(again)

    def close(self, timeout_s: float = 10.0) -> None:
        self.producer.close(timeout=timeout_s)
