"""The scorers' group input on librdkafka (the :class:`~stream_neuron.kafka_io.ports.GroupInput` port).

Delivery: at least once. Offsets are committed only for what was processed and published, and only
for the partitions this member still owns; ``on_revoke`` runs inside :meth:`RdGroupInput.poll` before
partitions go to another member (confluent-kafka calls it from ``consume`` and then unassigns them).
The next owner starts at the last committed offset: what was processed after it is processed again,
nothing is lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.errors import AccessDeniedError
from stream_neuron.kafka_io.librdkafka.config import consumer_config
from stream_neuron.kafka_io.librdkafka.consuming import consume_available, input_records, partitions_of
from stream_neuron.kafka_io.librdkafka.errors import described, translated
from stream_neuron.kafka_io.limits import OFFSETS_TIMEOUT_MS, SESSION_TIMEOUT_MS
from stream_neuron.kafka_io.ports import Positions
from stream_neuron.records import InputRecord

log = logging.getLogger(__name__)

TIMEOUT_S = OFFSETS_TIMEOUT_MS / 1000
DENIED = {
    KafkaError.GROUP_AUTHORIZATION_FAILED: "consumer group",
    KafkaError.TOPIC_AUTHORIZATION_FAILED: "topic",
}


@translated
class RdGroupInput:
    """``topic`` read as a member of ``group_id``; ``on_revoke(partitions)`` runs inside :meth:`poll`
    before those partitions go to another member."""

    def __init__(
        self,
        connection: Connection,
        topic: str,
        group_id: str,
        client_id: str,
        max_poll_records: int,
        on_revoke: Callable[[set[tuple[str, int]]], None],
    ) -> None:
        self._consumer = Consumer(
            {
                **consumer_config(connection, client_id, group_id),
                "session.timeout.ms": SESSION_TIMEOUT_MS,
                "heartbeat.interval.ms": SESSION_TIMEOUT_MS // 3,
            }
        )
        self.topic, self.group_id = topic, group_id
        self._on_revoke = on_revoke
        self._closing = False  # the owner committed its last positions itself before closing
        self._consumer.subscribe([topic], on_revoke=self._revoked)

    def _revoked(self, consumer: Any, partitions: list[Any]) -> None:
        if partitions and not self._closing:
            self._on_revoke({(tp.topic, tp.partition) for tp in partitions})

    def assignment(self) -> list[tuple[str, int]]:
        return sorted((tp.topic, tp.partition) for tp in self._consumer.assignment())

    def poll(self, timeout_ms: int, max_records: int) -> list[InputRecord]:
        messages = consume_available(self._consumer, max_records, timeout_ms / 1000)
        return input_records(messages, self._refuse)

    def _refuse(self, error: Any) -> None:
        """A consumer error: denied access ends the command; the rest librdkafka retries on its own."""
        what = DENIED.get(error.code())
        if what is not None:
            name = self.group_id if what == "consumer group" else self.topic
            raise AccessDeniedError(
                f"not authorized to use {what} {name!r} ({error.name()}): grant READ and DESCRIBE on it"
                + (", or set --group-id" if what == "consumer group" else ""),
                what,
                name,
            )
        log.debug("group input: %s", described(error))

    def commit(self, positions: Positions, wait: bool) -> None:
        owned = {(tp.topic, tp.partition) for tp in self._consumer.assignment()}
        offsets = [TopicPartition(t, p, o) for (t, p), o in positions.items() if (t, p) in owned]
        if not offsets:
            return
        try:
            if wait:
                self._consumer.commit(offsets=offsets, asynchronous=False)
            else:
                self._consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as error:
            # A rebalance under way refuses the commit: the partitions' next owner repeats what this
            # member processed since its last commit (at least once).
            log.warning("offset commit of the scorer group failed: %s", described(error))

    def committed_positions(self) -> dict[tuple[str, int], int | None]:
        tps = [TopicPartition(t, p) for t, p in self.assignment()]
        found = self._consumer.committed(tps, timeout=TIMEOUT_S) if tps else []
        return {(tp.topic, tp.partition): tp.offset if tp.offset >= 0 else None for tp in found}

    def group_metadata(self) -> Any:
        return self._consumer.consumer_group_metadata()

    def exhausted(self) -> bool:
        try:
            partitions = partitions_of(self._consumer, self.topic, 0)
            if not partitions:
                return False
            tps = [TopicPartition(self.topic, p) for p in partitions]
            owned = {tp.partition for tp in self._consumer.assignment() if tp.topic == self.topic}
            positions = {tp.partition: tp.offset for tp in self._consumer.position(tps)}
            committed = {tp.partition: tp.offset for tp in self._consumer.committed(tps, timeout=TIMEOUT_S)}
            for tp in tps:
                end = self._consumer.get_watermark_offsets(tp, timeout=TIMEOUT_S, cached=False)[1]
                if end < 0:
                    return False
                if tp.partition in owned and positions[tp.partition] >= 0:
                    read = positions[tp.partition]
                else:  # owned but nothing read yet, or owned by another member
                    read = max(committed[tp.partition], 0)
                if read < end:
                    return False
            return True
        except KafkaException:
            return False

    def lag(self, positions: Positions) -> int | None:
        return None

    def close(self) -> None:
        self._closing = True
        self._consumer.close()
