"""One transactional producer on kafka-python (the
:class:`~stream_neuron.kafka_io.ports.TransactionalProducer` port); what a transaction means, and the
recovery, are ``transactional.py``'s.

kafka-python's transaction calls wait without a timeout (the caller guards them with a thread). Its
producers are made with the fencing fix installed (``fencing_fix.py``): a fenced producer stops
instead of taking its transactional id back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

from kafka import KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka.errors import KafkaError

from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.errors import Refused, TransactionFailedError
from stream_neuron.kafka_io.kafka_python.config import new_producer, producer_config
from stream_neuron.kafka_io.kafka_python.errors import described, is_fenced, neutral, translated
from stream_neuron.kafka_io.kafka_python.partitions import PartitionHints
from stream_neuron.kafka_io.kafka_python.sender import Sent, send_records, settle
from stream_neuron.kafka_io.limits import TRANSACTION_TIMEOUT_MS
from stream_neuron.kafka_io.ports import Positions
from stream_neuron.records import OutputRecord

log = logging.getLogger(__name__)

RETIRE_ATTEMPTS = 10


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


@translated
class KafkaPythonTransactions:
    def __init__(
        self,
        connection: Connection,
        client_id: str,
        transactional_id: str,
        timeout_s: float,
        compression: str,
        smallest_topic_limit: int,
    ) -> None:
        timeout_ms = int(timeout_s * 1000)
        config = producer_config(
            connection, client_id, compression, smallest_topic_limit,
            transactional_id=transactional_id, max_block_ms=timeout_ms, request_timeout_ms=timeout_ms // 2,
            delivery_timeout_ms=timeout_ms, transaction_timeout_ms=TRANSACTION_TIMEOUT_MS,
        )  # fmt: skip
        self.producer = new_producer(connection, config)
        self.hints = PartitionHints(self.producer)
        self._sent = Sent()

    def init(self, timeout_s: float) -> None:
        self.producer.init_transactions()

    def begin(self) -> None:
        self.producer.begin_transaction()

    def send(self, records: Iterable[OutputRecord]) -> None:
        try:
            send_records(self.producer, records, self.hints, self._sent)
        except KafkaError as error:
            if is_fenced(error):
                raise
            # A record the broker refused earlier in this transaction put the producer in an error
            # state, which this send reports: name it, or the retry sends it again, for ever.
            raise TransactionFailedError(
                f"send failed: {described(error)}", self._sent.refused_so_far()
            ) from None

    def settle(self, timeout_s: float) -> list[tuple[OutputRecord, BaseException]] | None:
        failures = settle(self.producer, self._sent, timeout_s)
        if failures is None:
            return None
        return [(record, neutral(error)) for record, error in failures]

    def refused_so_far(self) -> list[Refused]:
        return self._sent.refused_so_far()

    def send_offsets(self, offsets: Positions, group_metadata: Any, timeout_s: float) -> None:
        to_commit = {TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in offsets.items()}
        self.producer.send_offsets_to_transaction(to_commit, group_metadata)

    def commit(self, timeout_s: float) -> None:
        self.producer.commit_transaction()

    def abort(self, timeout_s: float) -> None:
        self.producer.abort_transaction()

    def forget(self) -> None:
        self._sent.clear()

    def close(self, timeout_s: float) -> None:
        try:
            self.producer.close(timeout=timeout_s)
        except KafkaError as error:  # records still pending belong to a transaction never committed
            log.warning("the transactional producer did not close cleanly (%s)", described(error))

    def retire(self, timeout_s: float) -> None:
        retire_producer(self.producer, timeout_s)
