"""The transactional producer behind ``--guarantee exactly-once``: outputs, a snapshot and input
offsets committed together or not at all.

kafka-python's transaction calls (commit, abort, send_offsets) wait without a timeout; each is run
here in a helper thread and given up on after ``timeout_s``, so a lost broker ends in an abort and a
retry instead of a hang. A producer that cannot even abort is closed and replaced: the replacement's
``init_transactions`` (same transactional id) aborts whatever the old one left open.

Fencing: a second instance with the same transactional id bumps the producer epoch; the first then
gets ``ProducerFencedError`` and must stop writing (:class:`FencedError`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from kafka import KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka.errors import (
    InvalidProducerEpochError,
    KafkaError,
    ProducerFencedError,
    TransactionalIdAuthorizationFailedError,
)

from stream_neuron.kafka_io import fencing_fix
from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.errors import StartupError, TakenOverError
from stream_neuron.kafka_io.limits import PRODUCER_BATCH_BYTES, TRANSACTION_TIMEOUT_MS
from stream_neuron.kafka_io.partitions import PartitionHints
from stream_neuron.kafka_io.producer import (
    Refused,
    Sent,
    new_producer,
    producer_config,
    refused_for_itself,
    send_records,
    settle,
)
from stream_neuron.records import OutputRecord

log = logging.getLogger(__name__)
T = TypeVar("T")

FENCING_ERRORS = (ProducerFencedError, InvalidProducerEpochError)
RETIRE_ATTEMPTS = 10


def is_fenced(error: BaseException) -> bool:
    """kafka-python reports fencing as the error class, or, once the producer is in its error state,
    as a plain KafkaError naming it."""
    if isinstance(error, FENCING_ERRORS):
        return True
    return any(cls.__name__ in str(error) for cls in FENCING_ERRORS)


class FencedError(TakenOverError):
    """Another instance with the same model name took over: this one must exit without writing."""


class TransactionFailedError(RuntimeError):
    """The open transaction could not commit; it was aborted (or abandoned to the broker).
    ``refused``: the records the broker refused for what they are (too large, invalid), which will
    fail the same way in every retry of the transaction unless they are left out."""

    def __init__(self, message: str, refused: Sequence[Refused] = ()) -> None:
        super().__init__(message)
        self.refused = list(refused)


def transactional_id(model_name: str) -> str:
    """Stable per model, so a restarted or duplicate instance fences the previous one."""
    return f"stream-neuron-{model_name}"


def guarded(call: Callable[[], T], timeout_s: float, what: str) -> T:
    """``call()``, or :class:`TimeoutError` once ``timeout_s`` passes (the call goes on in its thread)."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as error:  # re-raised in the caller's thread
            outcome["error"] = error

    worker = threading.Thread(target=target, name=f"txn-{what}", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise TimeoutError(f"{what} did not finish within {timeout_s:.0f} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")  # type: ignore[return-value]


def retire_producer(producer: KafkaProducer, timeout_s: float) -> None:
    """Close a producer that is being replaced, without ever raising or blocking the caller.

    kafka-python's ``close`` flushes first and raises while batches are incomplete, even with
    ``timeout=0``; those batches fail or expire within the delivery timeout, so a helper thread
    keeps trying until the producer closes (its I/O thread would otherwise live on)."""
    try:
        producer.close(timeout=0)
        return
    except KafkaError:
        pass

    def close_when_drained() -> None:
        for _ in range(RETIRE_ATTEMPTS):
            try:
                producer.close(timeout=timeout_s)
                return
            except KafkaError:
                continue
        log.warning("a replaced transactional producer did not close after %d attempts", RETIRE_ATTEMPTS)

    threading.Thread(target=close_when_drained, name="txn-retire", daemon=True).start()


class TransactionalOutput:
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
        self.connection = connection
        self.compression = compression
        self.smallest_topic_limit = smallest_topic_limit
        self.client_id = client_id
        self.model_name = model_name
        self.timeout_s = timeout_s
        self.transactional_id = transactional_id(model_name)
        self.producer = self._new_producer()
        self.hints = PartitionHints(self.producer)
        self.healthy = True  # False while the producer was lost and not yet replaced
        self.open = False
        self._sent = Sent()  # the open transaction's records

    def _new_producer(self) -> KafkaProducer:
        fencing_fix.install()
        timeout_ms = int(self.timeout_s * 1000)
        config = producer_config(
            self.connection,
            self.client_id,
            self.compression,
            self.smallest_topic_limit,
            transactional_id=self.transactional_id,
            max_block_ms=timeout_ms,
            request_timeout_ms=timeout_ms // 2,
            delivery_timeout_ms=timeout_ms,
            transaction_timeout_ms=TRANSACTION_TIMEOUT_MS,
        )
        producer = new_producer(self.connection, config)
        try:
            guarded(producer.init_transactions, self.timeout_s, "init_transactions")
        except TransactionalIdAuthorizationFailedError:
            producer.close(timeout=0)
            who = self.connection.sasl_username or "this client"
            raise StartupError(
                f"user {who!r} may not use transactional id {self.transactional_id!r} (exactly-once): grant "
                "WRITE and DESCRIBE on it, or use --guarantee at-least-once"
            ) from None
        except FENCING_ERRORS as error:
            raise FencedError(
                f"cannot take over transactional id {self.transactional_id}: {error}"
            ) from error
        except BaseException:
            producer.close(timeout=0)
            raise
        return producer

    def send(self, records: Iterable[OutputRecord]) -> None:
        self._begin()
        try:
            send_records(self.producer, records, self.hints, self._sent)
        except KafkaError as error:
            if is_fenced(error):
                raise FencedError(self._fenced_message(error)) from error
            # A record the broker refused earlier in this transaction put the producer in an error
            # state, which this send reports: name it, or the retry sends it again, for ever.
            raise TransactionFailedError(f"send failed: {error!r}", self._sent.refused_so_far()) from error

    def _begin(self) -> None:
        if not self.open:
            try:
                self.producer.begin_transaction()
            except KafkaError as error:
                if is_fenced(error):
                    raise FencedError(self._fenced_message(error)) from error
                raise TransactionFailedError(f"begin_transaction failed: {error!r}") from error
            self.open = True

    def commit(
        self,
        offsets: dict[tuple[str, int], int],
        group_metadata: Any,
        before_offsets: Callable[[], None],
        before_commit: Callable[[], None],
    ) -> None:
        """Add ``offsets`` (of the consumer group ``group_metadata`` describes) to the open transaction
        and commit it; :class:`TransactionFailedError` (after an abort) or :class:`FencedError` when it
        cannot."""
        self._begin()
        try:
            failures = settle(self.producer, self._sent, self.timeout_s)
            if failures is None:
                raise TimeoutError(f"the outputs were not acknowledged within {self.timeout_s:.0f} s")
            if failures:
                failure = failures[0].error
                if is_fenced(failure):
                    raise FencedError(self._fenced_message(failure))
                refused = [f for f in failures if refused_for_itself(f.error)]
                raise TransactionFailedError(f"an output record was not acknowledged: {failure!r}", refused)
            before_offsets()
            if offsets:
                to_commit = {
                    TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in offsets.items()
                }
                guarded(
                    lambda: self.producer.send_offsets_to_transaction(to_commit, group_metadata),
                    self.timeout_s,
                    "send_offsets",
                )
            before_commit()
            guarded(self.producer.commit_transaction, self.timeout_s, "commit_transaction")
            self.open = False
        except (KafkaError, TimeoutError, TransactionFailedError) as error:
            if is_fenced(error):
                raise FencedError(self._fenced_message(error)) from error
            refused = error.refused if isinstance(error, TransactionFailedError) else []
            try:
                self.abort()
            except (KafkaError, TimeoutError) as abort_error:
                # Not even a new producer now (the broker is away): recovery replaces it later.
                log.warning("abort failed too (%s)", abort_error)
            raise TransactionFailedError(f"transaction aborted: {error}", refused) from error

    def abort(self) -> None:
        """Abort the open transaction; a producer that cannot is replaced (its successor aborts it)."""
        self._sent.clear()
        if not self.open:
            return
        self.open = False
        try:
            guarded(self.producer.abort_transaction, self.timeout_s, "abort_transaction")
            return
        except (KafkaError, TimeoutError) as error:
            if is_fenced(error):
                raise FencedError(self._fenced_message(error)) from error
            log.warning("abort failed (%s): replacing the transactional producer", error)
        self.reconnect()

    def recover(self) -> None:
        """After a failed transaction: a lost producer is replaced, an open transaction aborted."""
        if not self.healthy:
            self.reconnect()
        self.abort()

    def reconnect(self) -> None:
        """After a failure: a fresh producer (its init aborts anything the old one left open)."""
        self._sent.clear()
        self.open = False
        if self.healthy:
            self.healthy = False
            retire_producer(self.producer, self.timeout_s)
        self.producer = self._new_producer()
        self.hints = PartitionHints(self.producer)
        self.healthy = True

    def close(self) -> None:
        if not self.healthy:
            return  # the producer was retired and no replacement came up
        if self.open:
            self.abort()
        try:
            self.producer.close(timeout=5)
        except KafkaError as error:  # records still pending belong to a transaction never committed
            log.warning("the transactional producer did not close cleanly (%s)", error)

    def _fenced_message(self, error: BaseException) -> str:
        return (
            f"fenced: another instance took over model {self.model_name!r} "
            f"(transactional id {self.transactional_id}); this one stops without writing "
            f"({error.__class__.__name__})"
        )
