"""One transactional producer on librdkafka (the
:class:`~stream_neuron.kafka_io.ports.TransactionalProducer` port); what a transaction means, and the
recovery, are ``transactional.py``'s.

librdkafka's transaction calls fence the way the Java client does (a fenced producer is fatal), so
nothing is patched here; they take timeouts, and the caller guards them with a thread as well.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from confluent_kafka import TopicPartition

from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.errors import (
    FencedError,
    KafkaIOError,
    RecordRefusedError,
    Refused,
    TransactionFailedError,
)
from stream_neuron.kafka_io.librdkafka.config import producer_config
from stream_neuron.kafka_io.librdkafka.errors import REFUSED, described, neutral, translated
from stream_neuron.kafka_io.librdkafka.sender import QueueFullError, RdProducer
from stream_neuron.kafka_io.limits import TRANSACTION_TIMEOUT_MS
from stream_neuron.kafka_io.ports import Positions
from stream_neuron.records import OutputRecord

DELIVERY_CHECK_S = 0.2  # how often the wait for acknowledgements looks for a failed record


@translated
class RdTransactions:
    def __init__(
        self,
        connection: Connection,
        client_id: str,
        transactional_id: str,
        timeout_s: float,
        compression: str,
        smallest_topic_limit: int,
    ) -> None:
        config = producer_config(
            connection, client_id, compression, smallest_topic_limit,
            **{
                "transactional.id": transactional_id,
                "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
                "message.timeout.ms": int(timeout_s * 1000),
            },
        )  # fmt: skip
        self._sender = RdProducer(config)
        self.producer = self._sender.producer

    def init(self, timeout_s: float) -> None:
        self.producer.init_transactions(timeout_s)

    def begin(self) -> None:
        self.producer.begin_transaction()

    def send(self, records: Iterable[OutputRecord]) -> None:
        try:
            self._sender.send(records)
        except QueueFullError as full:
            raise TransactionFailedError(f"send failed: {full}", self.refused_so_far()) from None
        except FencedError:
            raise
        except KafkaIOError as error:  # an abortable error: the transaction must abort first
            raise TransactionFailedError(f"send failed: {error}", self.refused_so_far()) from None

    def settle(self, timeout_s: float) -> list[tuple[OutputRecord, BaseException]] | None:
        """Until every record sent is acknowledged, or one failed (then the transaction must abort, and
        the records after it never will be: librdkafka holds them until the abort)."""
        sender = self._sender
        deadline = time.monotonic() + timeout_s
        while self.producer.flush(DELIVERY_CHECK_S):
            if sender.failed or sender.refused_now:
                break
            if time.monotonic() > deadline:
                return None
        failed: list[tuple[OutputRecord, BaseException]] = [(r.record, r.error) for r in sender.refused_now]
        return failed + [(record, neutral(error)) for record, error in sender.failures()]

    def refused_so_far(self) -> list[Refused]:
        answered = [
            Refused(record, RecordRefusedError(described(error)))
            for record, error in self._sender.failures()
            if error.code() in REFUSED
        ]
        return [*self._sender.refused_now, *answered]

    def send_offsets(self, offsets: Positions, group_metadata: Any, timeout_s: float) -> None:
        positions = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        self.producer.send_offsets_to_transaction(positions, group_metadata, timeout_s)

    def commit(self, timeout_s: float) -> None:
        self.producer.commit_transaction(timeout_s)
        self._sender.reset()

    def abort(self, timeout_s: float) -> None:
        self.producer.abort_transaction(timeout_s)

    def forget(self) -> None:
        self._sender.reset()

    def close(self, timeout_s: float) -> None:
        self.producer.flush(timeout_s)

    def retire(self, timeout_s: float) -> None:
        """librdkafka's producer goes with its last reference; nothing to wait for."""
