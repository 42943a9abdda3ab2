"""The scorers' group input on librdkafka (``--kafka-client confluent``), with the contract of
``group_input.GroupInput``.

Delivery: at least once. Offsets are committed only for what was processed and published, and only
for the partitions this member still owns; ``on_revoke`` runs inside :meth:`RdGroupInput.poll` before
partitions go to another member (confluent-kafka calls it from ``consume`` and then unassigns them).
The next owner starts at the last committed offset: what was processed after it is processed again,
nothing is lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.errors import StartupError
from stream_neuron.kafka_io.group_input import SESSION_TIMEOUT_MS
from stream_neuron.kafka_io.limits import OFFSETS_TIMEOUT_MS
from stream_neuron.kafka_io.rd_input import consume_available, input_records, rd_consumer_config, rdkafka
from stream_neuron.records import InputRecord

log = logging.getLogger(__name__)

Positions = Mapping[tuple[str, int], int]


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
        kafka = rdkafka()
        self._kafka = kafka
        self._consumer = kafka.Consumer(
            {
                **rd_consumer_config(connection, client_id, group_id),
                # A replica that dies hands its partitions on after this long without a heartbeat.
                "session.timeout.ms": SESSION_TIMEOUT_MS,
                "heartbeat.interval.ms": SESSION_TIMEOUT_MS // 3,
            }
        )
        self.topic, self.group_id = topic, group_id
        self._on_revoke = on_revoke
        self._closing = False  # the owner committed its last positions itself before closing
        self._consumer.subscribe([topic], on_revoke=self._revoked)
        self._timeout_s = OFFSETS_TIMEOUT_MS / 1000
        self._denied = frozenset(
            getattr(kafka.KafkaError, name)
            for name in ("GROUP_AUTHORIZATION_FAILED", "TOPIC_AUTHORIZATION_FAILED")
            if hasattr(kafka.KafkaError, name)
        )

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
        if error.code() in self._denied:
            what = "consumer group" if "GROUP" in error.name() else "topic"
            name = self.group_id if what == "consumer group" else self.topic
            raise StartupError(
                f"not authorized to use {what} {name!r} ({error.name()}): grant READ and DESCRIBE on it"
                + (", or set --group-id" if what == "consumer group" else "")
            )

    def commit(self, positions: Positions, wait: bool) -> None:
        """Commit the positions of the partitions this member still owns."""
        kafka = self._kafka
        owned = {(tp.topic, tp.partition) for tp in self._consumer.assignment()}
        offsets = [kafka.TopicPartition(t, p, o) for (t, p), o in positions.items() if (t, p) in owned]
        if not offsets:
            return
        try:
            self._consumer.commit(offsets=offsets, asynchronous=not wait)
        except kafka.KafkaException as error:
            # A rebalance under way refuses the commit: the partitions' next owner repeats what this
            # member processed since its last commit (at least once).
            log.warning("offset commit of the scorer group failed: %s", error)

    def committed_positions(self) -> dict[tuple[str, int], int | None]:
        kafka = self._kafka
        tps = [kafka.TopicPartition(t, p) for t, p in self.assignment()]
        found = self._consumer.committed(tps, timeout=self._timeout_s) if tps else []
        return {(tp.topic, tp.partition): tp.offset if tp.offset >= 0 else None for tp in found}

    def group_metadata(self) -> Any:
        return self._consumer.consumer_group_metadata()

    def exhausted(self) -> bool:
        """True when the whole topic is read to its end by the group: this member's partitions by its
        positions, the others by the group's committed offsets (a member that died leaves its
        uncommitted tail to whoever takes its partitions, so the group is not done yet)."""
        kafka = self._kafka
        try:
            entry = self._consumer.list_topics(self.topic, timeout=self._timeout_s).topics.get(self.topic)
            if entry is None or entry.error is not None or not entry.partitions:
                return False
            tps = [kafka.TopicPartition(self.topic, p) for p in sorted(entry.partitions)]
            owned = {tp.partition for tp in self._consumer.assignment() if tp.topic == self.topic}
            positions = {tp.partition: tp.offset for tp in self._consumer.position(tps)}
            committed = {
                tp.partition: tp.offset for tp in self._consumer.committed(tps, timeout=self._timeout_s)
            }
            for tp in tps:
                end = self._consumer.get_watermark_offsets(tp, timeout=self._timeout_s, cached=False)[1]
                if tp.partition in owned and positions[tp.partition] >= 0:
                    read = positions[tp.partition]
                else:  # owned but nothing read yet, or owned by another member
                    read = max(committed[tp.partition], 0)
                if read < end:
                    return False
            return True
        except kafka.KafkaException:
            return False

    def lag(self, positions: Positions) -> int | None:
        return None

    def close(self) -> None:
        self._closing = True
        self._consumer.close()
