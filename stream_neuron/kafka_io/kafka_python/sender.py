"""Sending output records on kafka-python, and waiting for them: the at-least-once sender (the
:class:`~stream_neuron.kafka_io.ports.OutputSender` port) and the send/settle steps the transactional
producer shares.

kafka-python's ``send`` can wait (``max_block_ms``) for a topic's metadata or for buffer space, and its
batches expire (``delivery_timeout_ms``) while the broker is away or the process paused; both raise
``KafkaTimeoutError``, which may pass. The sender keeps such records, and the ones after them, for the
next :meth:`KafkaPythonSender.settle` to hand back as ``retry``: a pause is never the end of the run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError

from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.errors import PublishError, RecordRefusedError, Refused
from stream_neuron.kafka_io.kafka_python.config import new_producer, producer_config
from stream_neuron.kafka_io.kafka_python.errors import (
    RECORD_ERRORS,
    described,
    neutral,
    refused_for_itself,
    translated,
)
from stream_neuron.kafka_io.kafka_python.partitions import PartitionHints
from stream_neuron.kafka_io.ports import Settled
from stream_neuron.records import OutputRecord

log = logging.getLogger(__name__)

# A send waits this long for a topic's metadata or buffer space before the record is kept for later: a
# deleted topic or an absent broker must not hold the loop for the client's default minute.
SEND_BLOCK_MS = 5_000


class Sent:
    """The records handed to a producer since they were last settled, with their futures."""

    def __init__(self) -> None:
        self.pending: list[tuple[Any, OutputRecord]] = []
        self.failed: list[tuple[OutputRecord, BaseException]] = []  # refused or not queued, by the client

    def clear(self) -> None:
        self.pending.clear()
        self.failed.clear()

    def refused_so_far(self) -> list[Refused]:
        """The records already known to be refused for what they are (the broker answered, or the
        client refused them at once), without waiting for the others."""
        answered = [
            (record, future.exception)
            for future, record in self.pending
            if future.is_done and future.exception is not None
        ]
        return [
            Refused(record, RecordRefusedError(described(error)))
            for record, error in (*self.failed, *answered)
            if refused_for_itself(error)
        ]


def send_records(
    producer: KafkaProducer, records: Iterable[OutputRecord], hints: PartitionHints, sent: Sent
) -> None:
    """Hand ``records`` to the producer in order (no callback per record: :func:`settle` reads each
    record's future once it is done). A record the client refuses at once goes to ``sent.failed``; one
    it cannot queue in time (a timeout), and every record after it, too."""
    send, hint, pending = producer.send, hints.for_topic, sent.pending
    records = iter(records)
    for record in records:
        try:
            future = send(
                record.topic, value=record.value, key=record.key, headers=record.headers or None,
                partition=hint(record.topic),
            )  # fmt: skip
        except RECORD_ERRORS as error:  # larger than max_request_size, say: refused before sending
            sent.failed.append((record, error))
            continue
        except KafkaTimeoutError as error:  # no metadata or buffer space in time: later, in order
            sent.failed += [(record, error), *((later, error) for later in records)]
            return
        pending.append((future, record))


def settle(
    producer: KafkaProducer, sent: Sent, timeout_s: float
) -> list[tuple[OutputRecord, BaseException]] | None:
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
                if not future.is_done:
                    return None
            except KafkaError:
                pass  # read below
    failed = sent.failed + [(record, future.exception) for future, record in sent.pending if future.exception]
    sent.clear()
    return failed


@translated
class KafkaPythonSender:
    """The ``acks=all`` producer of at-least-once outputs (not idempotent: see ``delivery.py``)."""

    def __init__(
        self, connection: Connection, client_id: str, compression: str, smallest_topic_limit: int
    ) -> None:
        config = producer_config(
            connection, client_id, compression, smallest_topic_limit,
            enable_idempotence=False, max_block_ms=SEND_BLOCK_MS,
        )  # fmt: skip
        self.producer = new_producer(connection, config)
        self._sent = Sent()
        self._hints = PartitionHints(self.producer)

    def send(self, records: Iterable[OutputRecord]) -> None:
        send_records(self.producer, records, self._hints, self._sent)

    def settle(self, timeout_s: float) -> Settled | None:
        failures = settle(self.producer, self._sent, timeout_s)
        if failures is None:
            return None
        settled = Settled([], [])
        for record, error in failures:
            if refused_for_itself(error):
                settled.refused.append(Refused(record, RecordRefusedError(described(error))))
            elif getattr(error, "retriable", False):
                settled.retry.append(record)
            else:
                raise PublishError(f"publishing to {record.topic!r} failed: {neutral(error)}")
        return settled

    def unsettled(self) -> int:
        return sum(not future.is_done for future, _ in self._sent.pending)

    def close(self, timeout_s: float) -> None:
        """Close without raising: kafka-python's ``close`` flushes first and raises when the broker is
        away; what it could not send was never committed, and an error here would hide the one the run
        stopped for."""
        try:
            self.producer.close(timeout=timeout_s)
        except KafkaError as error:
            log.warning("the output producer closed with records unsent (%s)", described(error))
