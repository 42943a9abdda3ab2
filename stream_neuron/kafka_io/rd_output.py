"""The output producers on librdkafka (``--kafka-client confluent``): the at-least-once producer and
the transactional one, with the contracts of ``producer.OutputProducer`` and
``transactions.TransactionalOutput``.

Delivery reports come back only for the records that failed (``delivery.report.only.error``), through
one producer-wide callback: an acknowledged record costs no Python call at all. A record the broker
refuses for what it is (too large, invalid) is matched back to its output record at the flush
and handed back as :class:`Refused`, so the caller can dead-letter what it answers. librdkafka's
transaction calls fence the way the Java client does (a fenced producer is fatal), so unlike
kafka-python nothing is patched here. They take timeouts too, but ``send_offsets_to_transaction`` was
seen waiting for good after a broker restart despite its own, so each call is also guarded by a thread
(:func:`transactions.guarded`): past its timeout the transaction aborts and the producer is replaced.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.errors import PublishError, StartupError
from stream_neuron.kafka_io.limits import (
    MAX_REQUEST_BYTES,
    PRODUCER_BATCH_BYTES,
    PRODUCER_LINGER_MS,
    RECONNECT_BACKOFF_MAX_MS,
    TRANSACTION_TIMEOUT_MS,
)
from stream_neuron.kafka_io.producer import BATCH_MARGIN_BYTES, FLUSH_WAIT_S, RETRY_WAIT_S, Refused
from stream_neuron.kafka_io.rd_input import rdkafka
from stream_neuron.kafka_io.transactions import (
    FencedError,
    TransactionFailedError,
    guarded,
    transactional_id,
)
from stream_neuron.records import OutputRecord

log = logging.getLogger(__name__)

DELIVERY_CHECK_S = 0.2  # how often a commit's wait for acknowledgements looks for a failed one
GUARD_MARGIN_S = 2.0  # a transaction call's own timeout, and then this, before it is given up
QUEUE_FULL_S = 30.0  # a send that finds librdkafka's queue full this long fails (the broker is away)


class RdError(Exception):
    """A librdkafka error as an exception (what :class:`Refused` and the failures carry)."""

    def __init__(self, error: Any) -> None:
        super().__init__(f"{error.name()}: {error.str()}")
        self.error = error


def _codes(*names: str) -> frozenset[int]:
    kafka = rdkafka()
    return frozenset(getattr(kafka.KafkaError, name) for name in names if hasattr(kafka.KafkaError, name))


def refused_codes() -> frozenset[int]:
    """The broker (or the client, before sending) refuses the record itself: sending it again cannot
    help."""
    return _codes(
        "MSG_SIZE_TOO_LARGE", "_MSG_SIZE_TOO_LARGE", "INVALID_RECORD", "INVALID_TIMESTAMP", "INVALID_MSG",
        "INVALID_MSG_SIZE", "RECORD_LIST_TOO_LARGE", "MSG_SET_TOO_LARGE",
    )  # fmt: skip


def fencing_codes() -> frozenset[int]:
    return _codes("PRODUCER_FENCED", "_FENCED", "INVALID_PRODUCER_EPOCH", "TRANSACTION_COORDINATOR_FENCED")


def rd_producer_config(
    connection: Connection, client_id: str, compression: str, smallest_topic_limit: int, **extra: Any
) -> dict[str, Any]:
    """``acks=all``, batches sized as kafka-python's (never beyond the smallest output topic's limit),
    records as large as the largest output topic takes, Java's partitioner for keyed records."""
    return {
        **connection.rdkafka_config(client_id),
        "acks": "all",
        "linger.ms": PRODUCER_LINGER_MS,
        "batch.size": max(min(PRODUCER_BATCH_BYTES, smallest_topic_limit - BATCH_MARGIN_BYTES), 1024),
        "message.max.bytes": MAX_REQUEST_BYTES,
        "compression.type": compression,
        "partitioner": "murmur2_random",
        "reconnect.backoff.max.ms": RECONNECT_BACKOFF_MAX_MS,
        **extra,
    }


class _Sender:
    """A producer made from ``config`` that sends records and collects the delivery failures of those
    sent since :meth:`reset`."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.kafka = rdkafka()
        self.producer = self.kafka.Producer(
            {**config, "on_delivery": self._delivered, "delivery.report.only.error": True}
        )
        self.refused_codes = refused_codes()
        self.sent: list[OutputRecord] = []
        self.failed: list[tuple[str, bytes | None, bytes | None, Any]] = []
        self.refused_now: list[Refused] = []  # refused by the client before sending

    def _delivered(self, error: Any, message: Any) -> None:
        if error is not None:
            self.failed.append((message.topic(), message.key(), message.value(), error))

    def send(self, records: Iterable[OutputRecord]) -> None:
        produce, sent = self.producer.produce, self.sent.append
        for record in records:
            full_since: float | None = None
            while True:
                try:
                    if record.headers:
                        produce(record.topic, record.value, record.key, headers=record.headers)
                    else:
                        produce(record.topic, record.value, record.key)
                    break
                except BufferError:  # librdkafka's queue is full: let it send, for a while
                    full_since = time.monotonic() if full_since is None else full_since
                    if time.monotonic() - full_since > QUEUE_FULL_S:
                        raise PublishError(
                            f"publishing to {record.topic!r}: the client's queue stayed full for "
                            f"{QUEUE_FULL_S:.0f} s"
                        ) from None
                    self.producer.poll(0.05)
                except self.kafka.KafkaException as error:
                    code = error.args[0].code() if error.args else None
                    if code in self.refused_codes:
                        self.refused_now.append(Refused(record, RdError(error.args[0])))
                        break
                    raise PublishError(f"publishing to {record.topic!r} failed: {error}") from None
            sent(record)
        self.producer.poll(0)

    def failures(self) -> list[tuple[OutputRecord, Any]]:
        """The records whose delivery failed, with librdkafka's error."""
        if not self.failed:
            return []
        pending = {(r.topic, r.key, r.value): r for r in self.sent}
        return [(pending[(t, k, v)], error) for t, k, v, error in self.failed if (t, k, v) in pending]

    def reset(self) -> None:
        self.sent.clear()
        self.failed.clear()
        self.refused_now.clear()


class RdOutputProducer:
    """The ``acks=all`` at-least-once producer on librdkafka (not idempotent, as kafka-python's: a
    retried batch may land twice, which at least once allows). While the broker is away, :meth:`flush`
    keeps waiting and sends again what timed out; ``check(topics)`` raises for a topic gone for good,
    ``stopping()`` ends the wait."""

    def __init__(
        self,
        connection: Connection,
        client_id: str,
        compression: str = "none",
        smallest_topic_limit: int = PRODUCER_BATCH_BYTES,
        check: Callable[[set[str]], None] = lambda topics: None,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        config = rd_producer_config(
            connection, client_id, compression, smallest_topic_limit, **{"enable.idempotence": False}
        )
        self._sender = _Sender(config)
        self.producer = self._sender.producer
        self.check, self.stopping = check, stopping

    def send(self, records: Iterable[OutputRecord]) -> None:
        self._sender.send(records)

    def flush(self) -> list[Refused]:
        """Wait for every record sent so far: the records refused for what they are;
        :class:`PublishError` if any failed for good (nothing it covers may be committed)."""
        sender = self._sender
        refused: list[Refused] = []
        waited_since: float | None = None
        while True:
            remaining = self.producer.flush(FLUSH_WAIT_S)
            refused += sender.refused_now
            again: list[OutputRecord] = []
            failures = sender.failures() if remaining == 0 else []
            for record, error in failures:
                if error.code() in sender.refused_codes:
                    refused.append(Refused(record, RdError(error)))
                elif error.retriable() or error.code() < 0:  # librdkafka's own (a timeout, a lost link)
                    again.append(record)
                else:
                    raise PublishError(f"publishing to {record.topic!r} failed: {RdError(error)}")
            if remaining == 0:
                sender.reset()
                if not again:
                    if waited_since is not None:
                        log.warning(
                            "the outputs were acknowledged after %.0f s", time.monotonic() - waited_since
                        )
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
            if again:
                time.sleep(RETRY_WAIT_S)
                sender.send(again)

    def close(self, timeout_s: float = 10.0) -> None:
        remaining = self.producer.flush(timeout_s)
        if remaining:
            log.warning("the output producer closed with %d records unsent", remaining)


class RdTransactionalOutput:
    """Outputs, a snapshot and the input offsets of one commit interval, committed atomically."""

    def __init__(
        self,
        connection: Connection,
        client_id: str,
        model_name: str,
        timeout_s: float,
        compression: str = "none",
        smallest_topic_limit: int = PRODUCER_BATCH_BYTES,
    ) -> None:
        self.kafka = rdkafka()
        self.connection, self.client_id, self.model_name = connection, client_id, model_name
        self.compression, self.smallest_topic_limit = compression, smallest_topic_limit
        self.timeout_s = timeout_s
        self.guard_s = timeout_s + GUARD_MARGIN_S
        self.transactional_id = transactional_id(model_name)
        self.fencing_codes = fencing_codes()
        self.healthy = True
        self.open = False
        self._sender = self._new_sender()
        self.producer = self._sender.producer

    def _new_sender(self) -> _Sender:
        kafka = self.kafka
        config = rd_producer_config(
            self.connection, self.client_id, self.compression, self.smallest_topic_limit,
            **{
                "transactional.id": self.transactional_id,
                "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
                "message.timeout.ms": int(self.timeout_s * 1000),
            },
        )  # fmt: skip
        sender = _Sender(config)
        producer = sender.producer
        try:
            guarded(lambda: producer.init_transactions(self.timeout_s), self.guard_s, "init_transactions")
        except kafka.KafkaException as exception:
            error = exception.args[0]
            if error.code() == kafka.KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
                who = self.connection.sasl_username or "this client"
                raise StartupError(
                    f"user {who!r} may not use transactional id {self.transactional_id!r} (exactly-once): "
                    "grant WRITE and DESCRIBE on it, or use --guarantee at-least-once"
                ) from None
            if error.code() in self.fencing_codes:
                raise FencedError(
                    f"cannot take over transactional id {self.transactional_id}: {error}"
                ) from None
            raise TimeoutError(f"init_transactions failed: {RdError(error)}") from None
        return sender

    def _fenced(self, error: Any) -> bool:
        return bool(error.code() in self.fencing_codes or (error.fatal() and "fenced" in error.str().lower()))

    def _fenced_message(self, error: Any) -> str:
        return (
            f"fenced: another instance took over model {self.model_name!r} (transactional id "
            f"{self.transactional_id}); this one stops without writing ({error.name()})"
        )

    def _begin(self) -> None:
        if self.open:
            return
        try:
            self.producer.begin_transaction()
        except self.kafka.KafkaException as exception:
            error = exception.args[0]
            if self._fenced(error):
                raise FencedError(self._fenced_message(error)) from None
            raise TransactionFailedError(f"begin_transaction failed: {RdError(error)}") from None
        self.open = True

    def send(self, records: Iterable[OutputRecord]) -> None:
        self._begin()
        try:
            self._sender.send(records)
        except PublishError as error:
            raise TransactionFailedError(f"send failed: {error}") from None

    def commit(
        self,
        offsets: dict[tuple[str, int], int],
        group_metadata: Any,
        before_offsets: Callable[[], None],
        before_commit: Callable[[], None],
    ) -> None:
        """Add ``offsets`` to the open transaction and commit it; :class:`TransactionFailedError` (after
        an abort) or :class:`FencedError` when it cannot."""
        kafka, sender = self.kafka, self._sender
        self._begin()
        refused: list[Refused] = list(sender.refused_now)
        try:
            self._wait_for_deliveries()
            failures = sender.failures()
            for _, error in failures:
                if self._fenced(error):
                    raise FencedError(self._fenced_message(error))
            refused += [Refused(r, RdError(e)) for r, e in failures if e.code() in sender.refused_codes]
            if failures or refused:
                what = RdError(failures[0][1]) if failures else refused[0].error
                raise TransactionFailedError(f"an output record was not acknowledged: {what}", refused)
            before_offsets()
            if offsets:
                positions = [kafka.TopicPartition(t, p, o) for (t, p), o in offsets.items()]
                # librdkafka's own timeout does not always hold here (a group coordinator that moved
                # during a broker restart kept it waiting for good): the call is guarded as well
                send_offsets = self.producer.send_offsets_to_transaction
                guarded(
                    lambda: send_offsets(positions, group_metadata, self.timeout_s),
                    self.guard_s,
                    "send_offsets",
                )
            before_commit()
            guarded(
                lambda: self.producer.commit_transaction(self.timeout_s), self.guard_s, "commit_transaction"
            )
            self.open = False
            sender.reset()
        except (kafka.KafkaException, TimeoutError, TransactionFailedError) as failure:
            if isinstance(failure, kafka.KafkaException) and self._fenced(failure.args[0]):
                raise FencedError(self._fenced_message(failure.args[0])) from None
            what = RdError(failure.args[0]) if isinstance(failure, kafka.KafkaException) else failure
            self.abort()
            raise TransactionFailedError(f"transaction aborted: {what}", refused) from None

    def _wait_for_deliveries(self) -> None:
        """Until every record sent is acknowledged, or one failed (then the transaction must abort and
        the records after it never will be: librdkafka holds them until the abort)."""
        deadline = time.monotonic() + self.timeout_s
        while self.producer.flush(DELIVERY_CHECK_S):
            if self._sender.failed or self._sender.refused_now:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the outputs were not acknowledged within {self.timeout_s:.0f} s")

    def abort(self) -> None:
        """Abort the open transaction; a producer that cannot is replaced (its successor aborts it)."""
        self._sender.reset()
        if not self.open:
            return
        self.open = False
        try:
            guarded(
                lambda: self.producer.abort_transaction(self.timeout_s), self.guard_s, "abort_transaction"
            )
            return
        except self.kafka.KafkaException as exception:
            error = exception.args[0]
            if self._fenced(error):
                raise FencedError(self._fenced_message(error)) from None
            log.warning("abort failed (%s): replacing the transactional producer", RdError(error))
        except TimeoutError as error:
            log.warning("abort failed (%s): replacing the transactional producer", error)
        self.healthy = False

    def recover(self) -> None:
        """After a failed transaction: a lost producer is replaced, an open transaction aborted."""
        if not self.healthy:
            self.reconnect()
        self.abort()

    def reconnect(self) -> None:
        """A fresh producer (its init_transactions aborts anything the old one left open)."""
        self._sender.reset()
        self.open = False
        self.healthy = False
        self._sender = self._new_sender()
        self.producer = self._sender.producer
        self.healthy = True

    def close(self) -> None:
        if self.healthy and self.open:
            with contextlib.suppress(FencedError):
                self.abort()
