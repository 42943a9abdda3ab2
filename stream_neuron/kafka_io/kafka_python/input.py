"""The input consumer on kafka-python: every partition of the input topic, positioned where the model's
state ends (the :class:`~stream_neuron.kafka_io.ports.Input` port).

One model learns from the whole stream, so it reads all partitions itself (manual assignment) rather
than sharing them with a consumer group; the group id holds its committed offsets (for lag tools and
as the start of a model without a snapshot). Auto-commit is off: offsets are committed only by a
checkpoint. ``read_committed``: aborted transactions of upstream producers are never learned from.

Partitions added to the input topic while the component runs are picked up within
:data:`PARTITION_CHECK_S` (read from their beginning) and counted in the lag.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaError,
    NodeNotReadyError,
    TopicAuthorizationFailedError,
)

from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.errors import AccessDeniedError, TimedOutError, TopicMissingError
from stream_neuron.kafka_io.kafka_python.config import client_config, new_consumer
from stream_neuron.kafka_io.kafka_python.errors import translated
from stream_neuron.kafka_io.limits import (
    FETCH_MAX_BYTES,
    INPUT_METADATA_WAIT_S,
    MAX_PARTITION_FETCH_BYTES,
    OFFSETS_TIMEOUT_MS,
    PARTITION_CHECK_S,
    RECONNECT_BACKOFF_MAX_MS,
)
from stream_neuron.kafka_io.ports import OffsetRanges, Positions, StartPositions
from stream_neuron.records import InputRecord

log = logging.getLogger(__name__)


def input_consumer(
    connection: Connection, client_id: str, group_id: str, max_poll_records: int, **overrides: Any
) -> KafkaConsumer:
    """A consumer of input records (the runner's and the scorers'): offsets committed only by their
    owner, ``read_committed``, fetches sized for the largest records the input may hold."""
    return new_consumer(
        connection,
        **client_config(connection, client_id),
        group_id=group_id,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        max_poll_records=max_poll_records,
        fetch_max_bytes=FETCH_MAX_BYTES,
        max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES,
        reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
        **overrides,
    )


def poll_through_outages(consumer: KafkaConsumer, timeout_ms: int, max_records: int) -> dict[Any, Any]:
    """``consumer.poll``, with a broker that cannot be reached read as no records yet: kafka-python 3.0
    raises the connection error of a metadata refresh out of a group member's poll (its coordinator
    lookup lets only ``RetriableError`` subclasses through), which would end the run in an outage."""
    try:
        return consumer.poll(timeout_ms=timeout_ms, max_records=max_records)  # type: ignore[no-any-return]
    except (KafkaConnectionError, NodeNotReadyError) as error:
        log.debug("poll: the broker is not reachable (%s): no records", error)
        time.sleep(timeout_ms / 1000)
        return {}


def input_records(polled: Mapping[TopicPartition, list[Any]]) -> list[InputRecord]:
    return [
        InputRecord(r.topic, r.partition, r.offset, r.key, r.value, list(r.headers or ()), r.timestamp)
        for batch in polled.values()
        for r in batch
    ]


@translated
class InputConsumer:
    """Reads ``topic`` (or several: the input and the labels topic) from the given positions (a
    partition without one starts at the group's committed offset, else at the beginning)."""

    def __init__(
        self,
        connection: Connection,
        topic: str | list[str],
        group_id: str,
        client_id: str,
        max_poll_records: int,
        positions: Positions,
    ) -> None:
        self._consumer = input_consumer(
            connection, client_id, group_id, max_poll_records,
            # Cached metadata refreshes this often: partitions added to the input show up in it.
            metadata_max_age_ms=int(PARTITION_CHECK_S * 1000),
        )  # fmt: skip
        self.topics = [topic] if isinstance(topic, str) else list(topic)
        self._next_partition_check = time.monotonic() + PARTITION_CHECK_S
        self._unread: dict[TopicPartition, int | None] = {}  # start positions of partitions not read yet
        assigned: list[TopicPartition] = []
        for name in self.topics:
            deadline = time.monotonic() + INPUT_METADATA_WAIT_S
            partitions = self._consumer.partitions_for_topic(name)
            while not partitions and time.monotonic() < deadline:
                time.sleep(0.2)
                partitions = self._consumer.partitions_for_topic(name)
            if not partitions:
                self._consumer.close(autocommit=False)
                raise TopicMissingError(f"input topic {name!r} has no partitions", name)
            assigned += [TopicPartition(name, p) for p in sorted(partitions)]
        self._consumer.assign(assigned)
        try:  # the group's offsets: the start of partitions the model has no position for
            self._committed()
        except (GroupAuthorizationFailedError, TopicAuthorizationFailedError) as error:
            self._consumer.close(autocommit=False)
            who = connection.sasl_username or "this client"
            raise AccessDeniedError(
                f"user {who!r} may not use consumer group {group_id!r} ({error.__class__.__name__}): grant "
                "READ and DESCRIBE on that group, or set --group-id",
                "consumer group",
                group_id,
            ) from None
        self.seek({tp: offset for tp, offset in positions.items() if tp[0] in self.topics})

    def assignment(self) -> list[tuple[str, int]]:
        return sorted((tp.topic, tp.partition) for tp in self._consumer.assignment())

    def poll(self, timeout_ms: int, max_records: int) -> list[InputRecord]:
        if time.monotonic() >= self._next_partition_check:
            self._pick_up_new_partitions()
        return input_records(poll_through_outages(self._consumer, timeout_ms, max_records))

    def _pick_up_new_partitions(self) -> None:
        """Partitions the (periodically refreshed) metadata shows that are not read yet: from their
        beginning, since their records were all produced after this run started reading."""
        self._next_partition_check = time.monotonic() + PARTITION_CHECK_S
        known = self._consumer.assignment()
        new: list[TopicPartition] = []
        for name in self.topics:
            try:
                # A broker just back may report the topic as unavailable for a moment; kafka-python then
                # drops it from its metadata and asks the cluster again, which fails while it restarts.
                partitions = self._consumer.partitions_for_topic(name) or set()
            except KafkaError as error:
                log.debug("partition check of %s failed (%s): trying again later", name, error)
                return
            new += [
                TopicPartition(name, p) for p in sorted(partitions) if TopicPartition(name, p) not in known
            ]
        if not new:
            return
        self._consumer.assign([*known, *new])
        self._consumer.seek_to_beginning(*new)
        log.info("input has new partitions %s: reading them", [f"{tp.topic}:{tp.partition}" for tp in new])

    def offset_ranges(self) -> dict[tuple[str, int], tuple[int, int]]:
        """(first offset, end offset) of every assigned partition, asked of the broker now."""
        partitions = list(self._consumer.assignment())
        begins = self._consumer.beginning_offsets(partitions, timeout_ms=OFFSETS_TIMEOUT_MS)
        ends = self._consumer.end_offsets(partitions, timeout_ms=OFFSETS_TIMEOUT_MS)
        return {(tp.topic, tp.partition): (begins[tp], ends[tp]) for tp in partitions}

    def exhausted(self) -> bool:
        """True when every partition has been read to its end, as the broker says now; False when it
        has not, or the broker does not answer (a pause is not the end of the input)."""
        self._pick_up_new_partitions()
        partitions = list(self._consumer.assignment())
        try:
            ends = self._consumer.end_offsets(partitions, timeout_ms=OFFSETS_TIMEOUT_MS)
            return all(
                self._consumer.position(tp, timeout_ms=OFFSETS_TIMEOUT_MS) >= ends[tp] for tp in partitions
            )
        except KafkaError:
            return False

    def seek(self, positions: StartPositions) -> None:
        """Move to ``positions``; ``None`` means the beginning."""
        self._unread.clear()
        for (topic, partition), offset in positions.items():
            tp = TopicPartition(topic, partition)
            if offset is None:
                self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, offset)

    def committed_positions(self) -> dict[tuple[str, int], int | None]:
        """The group's committed offset of every assigned partition (``None``: nothing committed)."""
        return self._committed()

    def _committed(self) -> dict[tuple[str, int], int | None]:
        # Not translated (a private method): the constructor names a denied group itself.
        return {tp: self._consumer.committed(TopicPartition(*tp)) for tp in self.assignment()}

    def commit(self, positions: Positions, wait: bool) -> None:
        """Commit ``positions`` for the group; ``wait=False`` sends the commit without waiting."""
        offsets = {
            TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
            for (topic, partition), offset in positions.items()
        }
        if not offsets:
            return
        if wait:
            self._consumer.commit(offsets)
        else:
            self._consumer.commit_async(offsets)

    def lag(self, positions: Positions) -> int | None:
        """Records behind the end of the input, from the fetcher's cached high watermarks (no request);
        ``None`` until every partition's end is known."""
        total = 0
        for tp in self._consumer.assignment():
            highwater = self._consumer.highwater(tp)
            if highwater is None:
                return None
            position = positions.get((tp.topic, tp.partition))
            if position is None:  # nothing read from it yet: from where the consumer stands
                position = self._unread.get(tp)
                if position is None:
                    position = self._unread[tp] = self._consumer.position(tp, timeout_ms=0)
                if position is None:
                    return None
            total += max(highwater - position, 0)
        return total

    def ends(self) -> dict[tuple[str, int], bool]:
        known = {}
        for tp in self._consumer.assignment():
            highwater = self._consumer.highwater(tp)
            position = self._consumer.position(tp, timeout_ms=0)
            if highwater is not None and position is not None:
                known[(tp.topic, tp.partition)] = position >= highwater
        return known

    def group_metadata(self) -> Any:
        """What a transactional producer needs to commit this group's offsets."""
        return self._consumer.group_metadata()

    def close(self) -> None:
        self._consumer.close(autocommit=False)


def read_ranges(
    connection: Connection, client_id: str, ranges: OffsetRanges, timeout_s: float
) -> list[InputRecord]:
    """The committed records of each (topic, partition) from its first offset to (not including) its end,
    in order: what the input topic holds of a store it is the changelog of. Records compacted or deleted
    away are simply absent. :class:`TimedOutError` if the broker does not deliver them in ``timeout_s``."""
    if not ranges:
        return []
    consumer = input_consumer(connection, client_id, f"{client_id}-unused", 10_000)
    try:
        partitions = [TopicPartition(topic, partition) for topic, partition in ranges]
        consumer.assign(partitions)
        firsts = consumer.beginning_offsets(partitions, timeout_ms=OFFSETS_TIMEOUT_MS)
        ends = consumer.end_offsets(partitions, timeout_ms=OFFSETS_TIMEOUT_MS)
        goal = {tp: min(ranges[(tp.topic, tp.partition)][1], ends[tp]) for tp in partitions}
        for tp in partitions:
            consumer.seek(tp, max(ranges[(tp.topic, tp.partition)][0], firsts[tp]))
        records: list[InputRecord] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp, timeout_ms=OFFSETS_TIMEOUT_MS) < goal[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise TimedOutError(f"timed out reading back {sorted(ranges)} from the input")
            for record in input_records(consumer.poll(timeout_ms=500)):
                tp = TopicPartition(record.topic, record.partition)
                if record.offset < goal[tp]:
                    records.append(record)
        return records
    finally:
        consumer.close(autocommit=False)
