"""The transactional producer's own rules, without a broker: how produce errors are classified
(a fenced producer stops instead of re-initialising) and how a replaced producer is closed."""

from __future__ import annotations

import threading

import pytest
from kafka.errors import (
    InvalidProducerEpochError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
    OutOfOrderSequenceNumberError,
    ProducerFencedError,
    UnknownProducerIdError,
)
from kafka.producer.transaction_manager import TransactionManager

from stream_neuron.kafka_io.kafka_python import fencing_fix, join_fix, transactions
from stream_neuron.kafka_io.kafka_python.errors import is_fenced
from stream_neuron.kafka_io.kafka_python.sender import Sent
from stream_neuron.records import OutputRecord


def manager(transactional_id: str | None) -> TransactionManager:
    fencing_fix.install()  # as making a transactional producer does
    return TransactionManager(
        transactional_id=transactional_id, transaction_timeout_ms=60_000, api_version=(4, 1)
    )


@pytest.mark.parametrize(
    "error",
    [InvalidProducerEpochError, ProducerFencedError(), OutOfOrderSequenceNumberError, UnknownProducerIdError],
)
def test_epoch_errors_are_fatal_to_a_transactional_producer_not_an_epoch_bump(error: object) -> None:
    # A bump the broker refuses ends in a fresh InitProducerId, which fences the newer instance;
    # the checkpoint replaces the producer itself unless the error says it was fenced.
    fatal = TransactionManager.ERROR_CLASS_FATAL
    assert manager("stream-neuron-m").classify_batch_error(error, None) == fatal


def test_only_the_fencing_errors_count_as_fenced() -> None:
    assert is_fenced(InvalidProducerEpochError())
    assert is_fenced(KafkaError("the producer is in a fatal state: ProducerFencedError"))
    assert not is_fenced(OutOfOrderSequenceNumberError())
    assert not is_fenced(KafkaError("OutOfOrderSequenceNumberError"))


def test_idempotent_producers_and_retriable_errors_keep_kafka_pythons_rules() -> None:
    idempotent = manager(None)
    assert idempotent.classify_batch_error(InvalidProducerEpochError, None) == "NEEDS_EPOCH_BUMP"
    transactional = manager("stream-neuron-m")
    assert transactional.classify_batch_error(NotLeaderForPartitionError, None) == "RETRIABLE"


def test_install_is_idempotent() -> None:
    from kafka.coordinator.consumer import ConsumerCoordinator

    before = TransactionManager.classify_batch_error
    fencing_fix.install()
    assert TransactionManager.classify_batch_error is before
    join_fix.install()
    wrapped = ConsumerCoordinator.need_rejoin
    join_fix.install()
    assert ConsumerCoordinator.need_rejoin is wrapped


class PendingProducer:
    """Stands in for a KafkaProducer whose close() flushes first and raises while batches are pending
    (kafka-python does so even with timeout=0); with a timeout it waits for ``drained``."""

    def __init__(self, pending_closes: int) -> None:
        self.pending_closes = pending_closes
        self.timeouts: list[float] = []
        self.drained = threading.Event()
        self.closed = threading.Event()

    def close(self, timeout: float) -> None:
        self.timeouts.append(timeout)
        if timeout:
            self.drained.wait()
        if self.pending_closes:
            self.pending_closes -= 1
            raise KafkaTimeoutError("Timeout waiting for future")
        self.closed.set()


def test_retiring_a_producer_with_pending_batches_never_raises_and_closes_it_later() -> None:
    producer = PendingProducer(pending_closes=3)
    transactions.retire_producer(producer, 4.0)  # type: ignore[arg-type]
    assert not producer.closed.is_set()  # the caller goes on while the old batches drain
    producer.drained.set()
    assert producer.closed.wait(30)
    assert producer.timeouts == [0, 4.0, 4.0, 4.0]


def test_retiring_an_idle_producer_closes_it_at_once() -> None:
    producer = PendingProducer(pending_closes=0)
    transactions.retire_producer(producer, 4.0)  # type: ignore[arg-type]
    assert producer.closed.is_set()
    assert producer.timeouts == [0]


class _Answered:
    """A record future as kafka-python leaves it: done or not, with its exception if it failed."""

    def __init__(self, done: bool, exception: BaseException | None = None) -> None:
        self.is_done, self.exception = done, exception


def test_a_failed_send_names_the_records_already_refused_for_what_they_are() -> None:
    """A refused record puts the transactional producer in an error state that the next send reports:
    the records already answered as refused are named then (else the rollback sends them again, for
    ever); a retriable failure and a record not answered yet are not."""
    records = [OutputRecord("out", None, f"r{i}".encode(), [], None) for i in range(4)]
    sent = Sent()
    sent.pending = [
        (_Answered(True), records[0]),
        (_Answered(True, MessageSizeTooLargeError()), records[1]),
        (_Answered(True, NotLeaderForPartitionError()), records[2]),
        (_Answered(False), records[3]),
    ]
    sent.failed = [(records[3], MessageSizeTooLargeError()), (records[2], KafkaTimeoutError())]
    assert [(r.record, str(r.error).split(":")[0]) for r in sent.refused_so_far()] == [
        (records[3], "MessageSizeTooLargeError"),
        (records[1], "MessageSizeTooLargeError"),
    ]


class _Wakeups:
    def __init__(self) -> None:
        self.count = 0

    def notify(self) -> None:
        self.count += 1


def test_a_metadata_update_already_pending_wakes_no_one() -> None:
    """The outage spin: while an update is pending, asking again must not wake the I/O loop (it did on
    every turn of the producer's loop); once a refresh fails, the next request wakes it once more."""
    from kafka.cluster import ClusterMetadata
    from kafka.errors import KafkaConnectionError

    from stream_neuron.kafka_io.kafka_python import metadata_fix

    metadata_fix.install()
    cluster = ClusterMetadata()
    wakeups = _Wakeups()
    cluster._manager = object()  # attached to a client: requests wake its refresh loop
    cluster._wakeup = wakeups
    cluster.start_refresh_loop = lambda: None  # type: ignore[method-assign]
    first = cluster.request_update()
    assert [cluster.request_update() for _ in range(1000)] == [first] * 1000
    assert wakeups.count == 1
    cluster.failed_update(KafkaConnectionError("broker away"))
    assert first.is_done and cluster.request_update() is not first
    assert wakeups.count == 2


def test_a_fix_whose_kafka_python_source_changed_refuses_to_install() -> None:
    """Each fix reads state kept where it found it; a release that moved that state is refused, named."""
    from kafka.coordinator.base import BaseCoordinator

    from stream_neuron.kafka_io.errors import StartupError
    from stream_neuron.kafka_io.kafka_python.patching import check_source

    check_source(BaseCoordinator.join_group_async, ["self._join_task"], "the group join fix", "moved it")
    with pytest.raises(StartupError, match=r"^the group join fix: kafka-python's moved it$"):
        check_source(
            BaseCoordinator.join_group_async, ["self._join_attempt"], "the group join fix", "moved it"
        )
