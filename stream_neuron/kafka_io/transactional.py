"""The exactly-once output: the outputs, a snapshot and the input offsets of one commit interval,
committed in one Kafka transaction or not at all, on either backend.

Delivery: exactly once for ``read_committed`` readers. A transaction that cannot commit is aborted and
:class:`TransactionFailedError` raised; the caller rolls its state back to the committed snapshot and
replays. Every transaction call that may wait on the broker is guarded by a thread (``guard.py``): a
lost broker ends in an abort and a retry, never a hang. A producer that cannot even abort is replaced:
the replacement's ``init`` (same transactional id) aborts whatever the old one left open.

Fencing: a newer epoch of the transactional id makes this producer useless. That is either another
instance of the model taking over (then this one must stop: :class:`TakenOverError`, status 3), or the
broker aborting a transaction that stayed open past ``transaction.timeout.ms`` (a process paused for a
minute, a long outage), which must not end the run. The producer cannot tell them apart, so the next
:meth:`recover` asks ``claimed_by_another()`` (the writer claims on the model topic, which a new
instance writes before it initialises its producer): only when another instance claimed the model
after this one does it stop; otherwise a new producer takes a new epoch and the run resumes from the
committed snapshot.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.errors import (
    AccessDeniedError,
    FencedError,
    KafkaIOError,
    RecordRefusedError,
    Refused,
    TakenOverError,
    TimedOutError,
    TransactionFailedError,
)
from stream_neuron.kafka_io.guard import guarded
from stream_neuron.kafka_io.ports import Backend, Positions, TransactionalProducer
from stream_neuron.records import OutputRecord

log = logging.getLogger(__name__)

GUARD_MARGIN_S = 2.0  # a call's own timeout, and then this, before the guard gives up on it
SETTLE_WAIT_S = 5.0  # one wait for the outputs' acknowledgements before the topics are checked


def transactional_id(model_name: str) -> str:
    """Stable per model, so a restarted or duplicate instance takes the id over."""
    return f"stream-neuron-{model_name}"


class TransactionalOutput:
    def __init__(
        self,
        backend: Backend,
        connection: Connection,
        client_id: str,
        model_name: str,
        timeout_s: float,
        compression: str,
        smallest_topic_limit: int,
        claimed_by_another: Callable[[], None],
        check: Callable[[], None] = lambda: None,
    ) -> None:
        self.backend, self.connection, self.client_id = backend, connection, client_id
        self.check = check  # raises when an output topic is gone for good (asked while waiting)
        self.model_name, self.timeout_s = model_name, timeout_s
        self.guard_s = timeout_s + GUARD_MARGIN_S
        self.compression, self.smallest_topic_limit = compression, smallest_topic_limit
        self.claimed_by_another = claimed_by_another
        self.transactional_id = transactional_id(model_name)
        self.open = False
        self.fenced = False  # a newer epoch exists: whose, the next recover asks
        self.healthy = False  # False while the producer is lost and not yet replaced
        self.producer = self._new_producer()
        self.healthy = True

    def _new_producer(self) -> TransactionalProducer:
        producer = self.backend.transactional_producer(
            self.connection, self.client_id, self.transactional_id, self.timeout_s, self.compression,
            self.smallest_topic_limit,
        )  # fmt: skip
        try:
            guarded(lambda: producer.init(self.timeout_s), self.guard_s, "init_transactions")
        except AccessDeniedError:
            producer.retire(self.timeout_s)
            who = self.connection.sasl_username or "this client"
            raise AccessDeniedError(
                f"user {who!r} may not use transactional id {self.transactional_id!r} (exactly-once): grant "
                "WRITE and DESCRIBE on it, or use --guarantee at-least-once",
                "transactional id",
                self.transactional_id,
            ) from None
        except BaseException:
            producer.retire(self.timeout_s)
            raise
        return producer

    def _fenced(self, error: FencedError) -> TransactionFailedError:
        self.fenced, self.healthy, self.open = True, False, False
        self.producer.retire(self.timeout_s)
        return TransactionFailedError(f"the producer was fenced ({error})")

    def _begin(self) -> None:
        if self.open:
            return
        try:
            self.producer.begin()
        except FencedError as error:
            raise self._fenced(error) from None
        except KafkaIOError as error:
            raise TransactionFailedError(f"begin_transaction failed: {error}") from None
        self.open = True

    def send(self, records: Iterable[OutputRecord]) -> None:
        self._begin()
        try:
            self.producer.send(records)
        except FencedError as error:
            raise self._fenced(error) from None

    def commit(
        self,
        offsets: Positions,
        group_metadata: Any,
        before_offsets: Callable[[], None],
        before_commit: Callable[[], None],
    ) -> None:
        """Add ``offsets`` (of the consumer group ``group_metadata`` describes) to the open transaction
        and commit it; :class:`TransactionFailedError` (after an abort) when it cannot."""
        self._begin()
        producer, timeout_s = self.producer, self.timeout_s
        try:
            failures = self._settled(timeout_s)
            if failures is None:
                raise TimedOutError(f"the outputs were not acknowledged within {timeout_s:.0f} s")
            if failures:
                fenced = next((e for _, e in failures if isinstance(e, FencedError)), None)
                if fenced is not None:
                    raise fenced
                refused = [Refused(r, e) for r, e in failures if isinstance(e, RecordRefusedError)]
                raise TransactionFailedError(
                    f"an output record was not acknowledged: {failures[0][1]}", refused
                )
            before_offsets()
            if offsets:
                guarded(
                    lambda: producer.send_offsets(offsets, group_metadata, timeout_s),
                    self.guard_s,
                    "send_offsets",
                )
            before_commit()
            guarded(lambda: producer.commit(timeout_s), self.guard_s, "commit_transaction")
            self.open = False
        except FencedError as error:
            raise self._fenced(error) from None
        except KafkaIOError as error:
            refused = error.refused if isinstance(error, TransactionFailedError) else []
            self.abort()
            raise TransactionFailedError(f"transaction aborted: {error}", refused) from None

    def _settled(self, timeout_s: float) -> list[tuple[OutputRecord, BaseException]] | None:
        """The producer's settle, in waits of :data:`SETTLE_WAIT_S` with the output topics checked
        between them: a deleted topic ends the wait at once instead of at the timeout (a client may
        wait for its metadata until then)."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            failures = self.producer.settle(max(min(SETTLE_WAIT_S, left), 0.0))
            if failures is not None or left <= SETTLE_WAIT_S:
                return failures
            self.check()

    def abort(self) -> None:
        """Abort the open transaction; a producer that cannot is given up (:meth:`recover` replaces
        it, and its successor's init aborts the transaction). Never raises."""
        if not self.healthy:
            return
        self.producer.forget()
        if not self.open:
            return
        self.open = False
        try:
            guarded(lambda: self.producer.abort(self.timeout_s), self.guard_s, "abort_transaction")
            return
        except FencedError as error:
            self._fenced(error)
            return
        except KafkaIOError as error:
            log.warning("abort failed (%s): the transactional producer will be replaced", error)
        self.healthy = False
        self.producer.retire(self.timeout_s)

    def recover(self) -> None:
        """After a failed transaction: stop if another instance took the model over; else a lost or
        fenced producer is replaced and an open transaction aborted. A neutral error when the broker
        does not answer yet (the caller tries again)."""
        if self.fenced:
            try:
                self.claimed_by_another()
            except TakenOverError as error:  # another instance took over: stop
                raise FencedError(f"fenced: {error}") from None
            log.warning(
                "the broker fenced the transactional producer, and no other instance claimed model %r: "
                "the broker aborted a transaction that ran too long; a new producer takes over",
                self.model_name,
            )
            self.fenced = False
        if not self.healthy:
            self.producer = self._new_producer()
            self.healthy, self.open = True, False
        self.abort()

    def close(self) -> None:
        if not self.healthy:
            return
        self.abort()
        if self.healthy:
            self.producer.close(5.0)
