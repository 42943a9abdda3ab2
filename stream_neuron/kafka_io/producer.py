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


class Sent:
    """The records handed to a producer since they were last settled, with their futures."""

    def __init__(self) -> None:
        self.pending: list[tuple[Any, OutputRecord]] = []
        self.failed: list[Refused] = []  # refused at once, by the client

    def clear(self) -> None:
        self.pending.clear()
        self.failed.clear()

    def refused_so_far(self) -> list[Refused]:
        """The records already known to be refused for what they are (the broker answered, or the
        client refused them at once), without waiting for the others."""
        answered = [
            Refused(record, future.exception)
            for future, record in self.pending
            if future.is_done and future.exception is not None and refused_for_itself(future.exception)
        ]
        return [*(f for f in self.failed if refused_for_itself(f.error)), *answered]


def send_records(
    producer: KafkaProducer, records: Iterable[OutputRecord], hints: PartitionHints, sent: Sent
) -> None:
    """Hand ``records`` to the producer in order (no callback per record: :func:`settle` reads each
    record's future once it is done)."""
    send, hint, pending = producer.send, hints.for_topic, sent.pending
    for record in records:
        try:
            future = send(
                record.topic, value=record.value, key=record.key, headers=record.headers or None,
                partition=hint(record.topic),
            )  # fmt: skip
        except RECORD_ERRORS as error:  # larger than max_request_size, say: refused before sending
            sent.failed.append(Refused(record, error))
            continue
        pending.append((future, record))


def settle(producer: KafkaProducer, sent: Sent, timeout_s: float) -> list[Refused] | None:
    """Send what lingers and wait until every record in ``sent`` is done; the ones that failed, and
    ``sent`` emptied. ``None`` when ``timeout_s`` passes first (the undone ones stay in ``sent``).

    ``KafkaProducer.flush`` alone will not do: kafka-python 3.0's flush raises "Future not done" for
    ever once it has split a batch the broker found too large (the old batch's future is left undone),
    while each record's future is rebound to its new batch. So flush sends, and the records' own
    futures say when they are done."""
    try:
        producer.flush(timeout=timeout_s)
    except KafkaTimeoutError:
        return None
    except KafkaError:
        pass  # that flush: the futures below tell
    deadline = time.monotonic() + timeout_s
    for future, _ in sent.pending:
        if not future.is_done:
            try:
                future.get(timeout=max(deadline - time.monotonic(), 0.0))
            except KafkaTimeoutError:
                return None
            except KafkaError:
                pass  # read below
    failed = sent.failed + [
        Refused(record, future.exception) for future, record in sent.pending if future.exception
    ]
    sent.clear()
    return failed


class OutputProducer:
    """The ``acks=all`` producer of at-least-once runs.

    Not idempotent, on purpose: kafka-python 3.0 (``TransactionManager.classify_batch_error``) puts an
    idempotent producer in a fatal state for good after one record the broker refuses for what it is
    (too large, invalid), and every later send then fails with that record's error; the Java client
    fails only that batch. Idempotence would only keep a retried batch from being written twice (and
    in order), and at least once allows such repeats, so it is off. (A retried batch may then land
    after a later one; every output carries what it answers, and a snapshot is sent only once the
    outputs before it are acknowledged.)

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
        )
        self.producer = new_producer(connection, config)
        self.check = check
        self.stopping = stopping
        self._sent = Sent()
        self._hints = PartitionHints(self.producer)

    def send(self, records: Iterable[OutputRecord]) -> None:
        try:
            send_records(self.producer, records, self._hints, self._sent)
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
            failures = settle(self.producer, self._sent, FLUSH_WAIT_S)
            pending = failures is None  # the broker is slow or away
            again: list[OutputRecord] = []
            for record, error in failures or ():
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
        """Close without raising: kafka-python's ``close`` flushes first and raises when the broker is
        away; what it could not send was never committed, and an error here would hide the one the run
        stopped for."""
        try:
            self.producer.close(timeout=timeout_s)
        except KafkaError as error:
            log.warning("the output producer closed with records unsent (%s)", error)
