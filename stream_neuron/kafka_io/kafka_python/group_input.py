"""Requests read as one member of a consumer group (the scorers), on kafka-python (the
:class:`~stream_neuron.kafka_io.ports.GroupInput` port): Kafka splits the topic's partitions among the
members and moves them when one joins, leaves or dies.

Delivery: at least once. Offsets are committed only for what was processed and published, and only
for the partitions this member still owns; ``on_revoke`` tells the owner which partitions leave it (so
it drops their positions). The next owner starts at the last committed offset: what was processed
after it is processed again, nothing is lost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kafka import ConsumerRebalanceListener, OffsetAndMetadata, TopicPartition
from kafka.errors import GroupAuthorizationFailedError, KafkaError

from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.errors import AccessDeniedError
from stream_neuron.kafka_io.kafka_python.errors import translated
from stream_neuron.kafka_io.kafka_python.input import input_consumer, input_records, poll_through_outages
from stream_neuron.kafka_io.limits import OFFSETS_TIMEOUT_MS, SESSION_TIMEOUT_MS
from stream_neuron.kafka_io.ports import Positions
from stream_neuron.records import InputRecord


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, revoked: Callable[[set[tuple[str, int]]], None]) -> None:
        self.revoked = revoked
        self.closing = False  # the owner committed its last positions itself before closing

    def on_partitions_revoked(self, revoked: Any) -> None:
        if revoked and not self.closing:
            self.revoked({(tp.topic, tp.partition) for tp in revoked})

    def on_partitions_assigned(self, assigned: Any) -> None:
        pass


@translated
class GroupInput:
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
        self._consumer = input_consumer(
            connection, client_id, group_id, max_poll_records,
            # A replica that dies hands its partitions on after this long without a heartbeat.
            session_timeout_ms=SESSION_TIMEOUT_MS, heartbeat_interval_ms=SESSION_TIMEOUT_MS // 3,
        )  # fmt: skip
        self.topic, self.group_id = topic, group_id
        self._listener = _Listener(on_revoke)
        self._consumer.subscribe([topic], listener=self._listener)

    def assignment(self) -> list[tuple[str, int]]:
        return sorted((tp.topic, tp.partition) for tp in self._consumer.assignment())

    def poll(self, timeout_ms: int, max_records: int) -> list[InputRecord]:
        try:
            polled = poll_through_outages(self._consumer, timeout_ms, max_records)
        except GroupAuthorizationFailedError as error:
            raise AccessDeniedError(
                f"not authorized to use consumer group {self.group_id!r} ({error.__class__.__name__}): grant "
                "READ and DESCRIBE on it, or set --group-id",
                "consumer group",
                self.group_id,
            ) from None
        return input_records(polled)

    def commit(self, positions: Positions, wait: bool) -> None:
        """Commit the positions of the partitions this member still owns."""
        owned = self._consumer.assignment()
        offsets = {
            TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
            for (topic, partition), offset in positions.items()
            if TopicPartition(topic, partition) in owned
        }
        if not offsets:
            return
        if wait:
            self._consumer.commit(offsets)
        else:
            self._consumer.commit_async(offsets)

    def committed_positions(self) -> dict[tuple[str, int], int | None]:
        return {tp: self._consumer.committed(TopicPartition(*tp)) for tp in self.assignment()}

    def group_metadata(self) -> Any:
        return self._consumer.group_metadata()

    def exhausted(self) -> bool:
        """True when the whole topic is read to its end by the group: this member's partitions by its
        positions, the others by the group's committed offsets (a member that died leaves its
        uncommitted tail to whoever takes its partitions, so the group is not done yet)."""
        owned = self._consumer.assignment()
        partitions = [
            TopicPartition(self.topic, p) for p in self._consumer.partitions_for_topic(self.topic) or ()
        ]
        if not partitions:
            return False
        # A member that owns nothing (more members than partitions, or not yet in the group) is done
        # once the group's committed offsets reach the ends: it would otherwise idle for ever.
        try:
            ends = self._consumer.end_offsets(partitions, timeout_ms=OFFSETS_TIMEOUT_MS)
            for tp in partitions:
                if tp in owned:
                    read = self._consumer.position(tp, timeout_ms=OFFSETS_TIMEOUT_MS)
                else:
                    read = self._consumer.committed(tp, timeout_ms=OFFSETS_TIMEOUT_MS) or 0
                if read < ends[tp]:
                    return False
            return True
        except KafkaError:
            return False

    def lag(self, positions: Positions) -> int | None:
        return None

    def close(self) -> None:
        self._listener.closing = True
        self._consumer.close(autocommit=False)
