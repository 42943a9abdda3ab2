"""Sending output records on librdkafka, and waiting for them: the at-least-once sender (the
:class:`~stream_neuron.kafka_io.ports.OutputSender` port) and the producer the transactional one
shares.

Delivery reports come back only for the records that failed (``delivery.report.only.error``), through
one producer-wide callback: an acknowledged record costs no Python call at all. A record the broker
refuses for what it is (too large, invalid) is matched back to its output record when the sends are
settled. librdkafka retries on its own while the broker is away; a record whose
``message.timeout.ms`` passed comes back as a failure that may pass, and is sent again.

A producer that stalls while the broker answers is replaced. After a broker restart (or a broker
fenced for a moment), a produce response can name no leader for a partition; librdkafka 2.16 then
skips that partition's metadata update and leaves it without a leader, and its records wait until
``message.timeout.ms`` (5 minutes) and again when sent again (confluentinc/librdkafka#5430; seen: a
trainer's outputs acknowledged 439 s after a 75 s outage, a scorer's not within 10 minutes). When
nothing sent has been acknowledged for :data:`STALL_S` while a new connection to the broker is
answered, its unacknowledged records are purged and sent again through a new producer, whose
metadata is fresh. Cost: a purged record the broker had in fact written is written twice (at least
once allows it), and a partition that cannot take writes for longer (its leader down in a larger
cluster) gets a new producer every :data:`STALL_S` or so, with one log line each.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.errors import (
    KafkaIOError,
    PublishError,
    RecordRefusedError,
    Refused,
)
from stream_neuron.kafka_io.librdkafka.config import producer_config
from stream_neuron.kafka_io.librdkafka.errors import REFUSED, described, neutral, translated
from stream_neuron.kafka_io.ports import Settled
from stream_neuron.kafka_io.probe import answers
from stream_neuron.records import OutputRecord

log = logging.getLogger(__name__)

QUEUE_FULL_S = 30.0  # a send that finds librdkafka's queue full this long gives up (the broker is away)
STALL_S = 30.0  # librdkafka's request.timeout.ms: nothing acknowledged in longer, the broker answering
PURGE_REPORTS_S = 2.0  # for the purged records' delivery reports


class QueueFullError(Exception):
    """librdkafka's queue stayed full for :data:`QUEUE_FULL_S`; ``unsent`` are the records not queued."""

    def __init__(self, topic: str, unsent: list[OutputRecord]) -> None:
        super().__init__(f"publishing to {topic!r}: the client's queue stayed full for {QUEUE_FULL_S:.0f} s")
        self.unsent = unsent


class RdProducer:
    """A producer made from ``config`` that sends records and collects the delivery failures of those
    sent since :meth:`reset`."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.producer = Producer(
            {**config, "on_delivery": self._delivered, "delivery.report.only.error": True}
        )
        self.sent: list[OutputRecord] = []
        self.failed: list[tuple[str, bytes | None, bytes | None, KafkaError]] = []
        self.refused_now: list[Refused] = []  # refused by the client before sending

    def _delivered(self, error: KafkaError | None, message: Any) -> None:
        if error is not None:
            self.failed.append((message.topic(), message.key(), message.value(), error))

    def send(self, records: Iterable[OutputRecord]) -> None:
        """Queue ``records`` in order; :class:`QueueFullError` (with the records not queued) when the
        client's queue stays full; the neutral error of the client's refusal of anything else (a
        producer in an error state, say)."""
        produce, sent = self.producer.produce, self.sent.append
        pending = list(records) if not isinstance(records, list) else records
        for i, record in enumerate(pending):
            full_since: float | None = None
            while True:
                try:
                    if record.headers:
                        produce(record.topic, record.value, record.key, headers=record.headers)
                    else:
                        produce(record.topic, record.value, record.key)
                    break
                except BufferError:  # the queue is full: let the client send, for a while
                    full_since = time.monotonic() if full_since is None else full_since
                    if time.monotonic() - full_since > QUEUE_FULL_S:
                        raise QueueFullError(record.topic, pending[i:]) from None
                    self.producer.poll(0.05)
                except KafkaException as error:
                    kafka_error = error.args[0]
                    if kafka_error.code() in REFUSED:
                        self.refused_now.append(Refused(record, RecordRefusedError(described(kafka_error))))
                        break
                    raise neutral(error, f"publishing to {record.topic!r}") from None
            sent(record)
        self.producer.poll(0)

    def failures(self) -> list[tuple[OutputRecord, KafkaError]]:
        """The records whose delivery failed, with librdkafka's error."""
        if not self.failed:
            return []
        pending = {(r.topic, r.key, r.value): r for r in self.sent}
        return [(pending[(t, k, v)], error) for t, k, v, error in self.failed if (t, k, v) in pending]

    def reset(self) -> None:
        self.sent.clear()
        self.failed.clear()
        self.refused_now.clear()


@translated
class RdSender:
    """The ``acks=all`` producer of at-least-once outputs (not idempotent: see ``delivery.py``)."""

    def __init__(
        self, connection: Connection, client_id: str, compression: str, smallest_topic_limit: int
    ) -> None:
        config = producer_config(
            connection, client_id, compression, smallest_topic_limit, **{"enable.idempotence": False}
        )
        self._connection, self._config = connection, config
        self._producer = RdProducer(config)
        self._retry: list[OutputRecord] = []  # not queued: the queue stayed full
        self._stall: tuple[float, int] | None = None  # since when the broker answered, and unsent then

    def send(self, records: Iterable[OutputRecord]) -> None:
        if self._retry:  # after records waiting to be sent again: keep them in order
            self._retry += records
            return
        try:
            self._producer.send(records)
        except QueueFullError as full:
            self._retry += full.unsent
        except KafkaIOError as error:
            raise PublishError(str(error)) from None

    def settle(self, timeout_s: float) -> Settled | None:
        producer = self._producer
        unsent = producer.producer.flush(timeout_s)
        if unsent and not self._stalled(unsent):
            return None
        self._stall = None
        everything = False
        if unsent:
            producer, everything = self._replace()
        settled = Settled(list(producer.refused_now), self._retry)
        self._retry = []
        for record, error in producer.failures():
            if error.code() in REFUSED:
                settled.refused.append(Refused(record, RecordRefusedError(described(error))))
            elif error.retriable() or error.code() < 0:  # librdkafka's own (a timeout, a lost link)
                if not everything:
                    settled.retry.append(record)
            else:
                raise PublishError(f"publishing to {record.topic!r} failed: {neutral(error)}")
        if everything:
            refused = {id(r.record) for r in settled.refused}
            settled.retry.extend(r for r in producer.sent if id(r) not in refused)
        producer.reset()
        return settled

    def unsettled(self) -> int:
        producer = self._producer.producer
        producer.poll(0)  # serves the delivery reports that have come back
        return len(producer) + len(self._retry)

    def _stalled(self, unsent: int) -> bool:
        """Whether ``unsent`` records have waited :data:`STALL_S` with the broker answering: the clock
        starts when it answers (not during an outage) and again whenever a record is acknowledged."""
        if not answers(self._connection):  # a new connection (this producer's may be wedged too)
            self._stall = None  # the broker is away: an outage, which librdkafka rides out
            return False
        now = time.monotonic()
        if self._stall is None or unsent < self._stall[1]:
            self._stall = (now, unsent)
            return False
        return now - self._stall[0] >= STALL_S

    def _replace(self) -> tuple[RdProducer, bool]:
        """Purge the stalled producer, whose unacknowledged records come back as failures to send
        again, and put a new one in its place. Returns the old one, to settle from, and whether
        everything it was handed must be sent again (a purged record not reported back)."""
        old = self._producer
        unsent = len(old.producer)
        old.producer.purge(in_queue=True, in_flight=True, blocking=True)
        old.producer.flush(PURGE_REPORTS_S)  # serves the purged records' delivery reports
        self._producer = RdProducer(self._config)
        log.warning(
            "the output producer had %d records unacknowledged for %.0f s while the broker answered: "
            "replaced it, and they are sent again",
            unsent, STALL_S,
        )  # fmt: skip
        return old, len(old.producer) > 0

    def close(self, timeout_s: float) -> None:
        remaining = self._producer.producer.flush(timeout_s)
        if remaining:
            log.warning("the output producer closed with %d records unsent", remaining)
