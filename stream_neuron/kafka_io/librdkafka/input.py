"""The input consumer on librdkafka (the :class:`~stream_neuron.kafka_io.ports.Input` port): every
partition of the input topics, positioned where the model's state ends, offsets committed only by a
checkpoint, ``read_committed``, on confluent-kafka's ``Consumer``.

librdkafka fetches in its own threads and hands a poll's records over in one call (``consume``), and
its reconnects and retries never surface as exceptions: a paused broker is a poll that returns
nothing. Positions are set by assigning with offsets (a seek on a partition not yet fetching is
refused), so :meth:`RdInputConsumer.seek` re-assigns.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.errors import (
    AccessDeniedError,
    KafkaIOError,
    TimedOutError,
    TopicMissingError,
)
from stream_neuron.kafka_io.librdkafka.admin import group_denied
from stream_neuron.kafka_io.librdkafka.config import consumer_config
from stream_neuron.kafka_io.librdkafka.consuming import (
    TIMEOUT_S,
    consume_available,
    input_records,
    partitions_of,
    topic_partitions,
)
from stream_neuron.kafka_io.librdkafka.errors import described, translated
from stream_neuron.kafka_io.limits import INPUT_METADATA_WAIT_S, PARTITION_CHECK_S
from stream_neuron.kafka_io.ports import OffsetRanges, Positions, StartPositions
from stream_neuron.kafka_io.probe import answers
from stream_neuron.records import InputRecord

log = logging.getLogger(__name__)

# Failed reads of the group's offsets in a row after which the consumer is replaced (see
# RdInputConsumer.committed_positions).
REPLACE_AFTER_FAILED_FETCHES = 3
CHECK_TIMEOUT_S = 5.0  # the periodic metadata request: milliseconds on a broker that answers


@translated
class RdInputConsumer:
    """Reads the input topics from the given positions (a partition without one starts at the group's
    committed offset, else at the beginning)."""

    def __init__(
        self,
        connection: Connection,
        topics: list[str],
        group_id: str,
        client_id: str,
        max_poll_records: int,
        positions: Positions,
    ) -> None:
        self._consumer = Consumer(consumer_config(connection, client_id, group_id))
        self._connection, self._group_id, self._client_id = connection, group_id, client_id
        self._failed_fetches = 0
        self._failed_checks = 0  # periodic metadata requests failed in a row
        self.topics = list(topics)
        self._next_partition_check = time.monotonic() + PARTITION_CHECK_S
        self._offsets: dict[tuple[str, int], int] = {}  # where each assigned partition starts
        partitions: list[tuple[str, int]] = []
        try:
            for name in self.topics:
                found = partitions_of(self._consumer, name, INPUT_METADATA_WAIT_S)
                if not found:
                    raise TopicMissingError(f"input topic {name!r} has no partitions", name)
                partitions += [(name, p) for p in found]
            committed = self._committed(partitions)
        except BaseException:
            self._consumer.close()
            raise
        start = {tp: committed.get(tp) for tp in partitions}
        start.update({tp: offset for tp, offset in positions.items() if tp in start})
        self._assign(start)

    def _assign(self, start: StartPositions) -> None:
        self._offsets = {tp: OFFSET_BEGINNING if offset is None else offset for tp, offset in start.items()}
        self._consumer.assign([TopicPartition(t, p, o) for (t, p), o in self._offsets.items()])

    def assignment(self) -> list[tuple[str, int]]:
        return sorted(self._offsets)

    def poll(self, timeout_ms: int, max_records: int) -> list[InputRecord]:
        if time.monotonic() >= self._next_partition_check:
            self._pick_up_new_partitions()
        return input_records(consume_available(self._consumer, max_records, timeout_ms / 1000))

    def _pick_up_new_partitions(self) -> None:
        """Assign the input's new partitions. After REPLACE_AFTER_FAILED_FETCHES metadata requests in a
        row that got no answer, while a new connection to the broker succeeds, the consumer is wedged,
        not the broker away.
        Seen after a broker restart on a loaded machine (where confluentinc/librdkafka#5430 leaves
        partitions without a leader): a run found inside this request at every look for nine minutes,
        never reaching the end of its input. It is then replaced by a new consumer reading on from its
        positions: nothing is read twice or skipped (the positions are what was handed over). The cost
        of the check is one metadata request per topic every PARTITION_CHECK_S."""
        self._next_partition_check = time.monotonic() + PARTITION_CHECK_S
        known = {name: topic_partitions(self._consumer, name, CHECK_TIMEOUT_S) for name in self.topics}
        if any(found is None for found in known.values()):
            self._failed_checks += 1
            if self._failed_checks >= REPLACE_AFTER_FAILED_FETCHES and answers(self._connection):
                read = {tp: p for tp, p in self._positions().items() if p is not None}
                start: dict[tuple[str, int], int | None] = {**self._offsets, **read}
                self._replace_consumer(
                    start, f"could not read the input's metadata {self._failed_checks} times"
                )
            return
        self._failed_checks = 0
        new = [
            (name, p) for name, found in known.items() for p in found or () if (name, p) not in self._offsets
        ]
        if new:
            self._consumer.incremental_assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in new])
            self._offsets.update(dict.fromkeys(new, OFFSET_BEGINNING))
            log.info("input has new partitions %s: reading them", [f"{t}:{p}" for t, p in new])

    def _watermarks(self, cached: bool) -> dict[tuple[str, int], tuple[int, int]] | None:
        ranges = {}
        for topic, partition in self._offsets:
            try:
                low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=TIMEOUT_S, cached=cached
                )
            except KafkaException:
                return None
            if high < 0:
                return None
            ranges[(topic, partition)] = (low, high)
        return ranges

    def offset_ranges(self) -> dict[tuple[str, int], tuple[int, int]]:
        ranges = self._watermarks(cached=False)
        if ranges is None:
            raise TimedOutError("the broker did not say where the input's partitions begin and end")
        return ranges

    def _positions(self) -> dict[tuple[str, int], int | None]:
        partitions = [TopicPartition(t, p) for t, p in self._offsets]
        return {
            (tp.topic, tp.partition): tp.offset if tp.offset >= 0 else None
            for tp in self._consumer.position(partitions)
        }

    def exhausted(self) -> bool:
        self._pick_up_new_partitions()
        ranges = self._watermarks(cached=False)
        if ranges is None:
            return False
        positions = self._positions()
        for tp, (low, high) in ranges.items():
            position = positions.get(tp)
            if position is None:  # nothing fetched yet: only an empty partition is read to its end
                start = self._offsets[tp]
                position = low if start < 0 else start
            if position < high:
                return False
        return True

    def seek(self, positions: StartPositions) -> None:
        start: dict[tuple[str, int], int | None] = {
            tp: None if offset == OFFSET_BEGINNING else offset for tp, offset in self._offsets.items()
        }
        start.update({tp: position for tp, position in self._positions().items() if position is not None})
        start.update(positions)
        self._consumer.unassign()
        self._assign(start)

    def _committed(self, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int | None]:
        try:
            committed = self._consumer.committed(
                [TopicPartition(t, p) for t, p in partitions], timeout=TIMEOUT_S
            )
        except KafkaException as error:
            if group_denied(self._connection, self._group_id):
                who = self._connection.sasl_username or "this client"
                raise AccessDeniedError(
                    f"user {who!r} may not use consumer group {self._group_id!r} (GroupAuthorizationFailed): "
                    "grant READ and DESCRIBE on that group, or set --group-id",
                    "consumer group",
                    self._group_id,
                ) from None
            raise KafkaIOError(f"cannot read the group's committed offsets: {described(error)}") from None
        return {(tp.topic, tp.partition): tp.offset if tp.offset >= 0 else None for tp in committed}

    def committed_positions(self) -> dict[tuple[str, int], int | None]:
        """The group's offsets, read for a rollback (which then positions the input itself).

        After a broker restart, a librdkafka consumer's offset fetch was seen to time out for good (every
        10 s for 10 minutes) while a new consumer of the same group read the offsets at once; so after
        REPLACE_AFTER_FAILED_FETCHES failures in a row the consumer is replaced by a new one assigned
        the same partitions. Nothing is lost: the input keeps no state of its own that a rollback does not
        set again, and its offsets are committed by the checkpoint. The cost is a new connection, and
        a consumer closed every 30 s while a broker is away."""
        try:
            committed = self._committed(self.assignment())
        except KafkaIOError:
            self._failed_fetches += 1
            if self._failed_fetches >= REPLACE_AFTER_FAILED_FETCHES:
                self._replace_consumer(
                    dict(self._offsets),
                    f"could not read the group's offsets {REPLACE_AFTER_FAILED_FETCHES} times",
                )
            raise
        self._failed_fetches = 0
        return committed

    def _replace_consumer(self, start: StartPositions, why: str) -> None:
        stuck = self._consumer
        self._consumer = Consumer(consumer_config(self._connection, self._client_id, self._group_id))
        self._assign(start)
        self._failed_fetches = self._failed_checks = 0
        log.warning("the input consumer %s: replaced it", why)
        try:
            stuck.close()
        except (KafkaException, RuntimeError) as error:
            log.debug("closing the replaced consumer: %s", error)

    def commit(self, positions: Positions, wait: bool) -> None:
        if not positions:
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in positions.items()]
        try:
            if wait:
                self._consumer.commit(offsets=offsets, asynchronous=False)
            else:
                self._consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as error:
            if wait:
                raise KafkaIOError(f"committing the input offsets failed: {described(error)}") from None
            log.debug("asynchronous commit: %s", described(error))

    def lag(self, positions: Positions) -> int | None:
        ranges = self._watermarks(cached=True)
        if ranges is None:
            return None
        total = 0
        for tp, (_, high) in ranges.items():
            position = positions.get(tp)
            if position is None:
                start = self._offsets[tp]
                if start < 0:
                    return None
                position = start
            total += max(high - position, 0)
        return total

    def ends(self) -> dict[tuple[str, int], bool]:
        known = {}
        for tp, position in self._positions().items():
            try:
                low, high = self._consumer.get_watermark_offsets(TopicPartition(*tp), cached=True)
            except KafkaException:
                continue
            if high < 0:  # no fetch answered for it yet
                continue
            if position is None:  # nothing consumed yet: where it was told to start
                start = self._offsets[tp]
                position = low if start < 0 else start
            known[tp] = position >= high
        return known

    def group_metadata(self) -> Any:
        return self._consumer.consumer_group_metadata()

    def close(self) -> None:
        self._consumer.close()


def read_ranges(
    connection: Connection, client_id: str, ranges: OffsetRanges, timeout_s: float
) -> list[InputRecord]:
    """The committed records of each (topic, partition) from its first offset to (not including) its
    end, in order; records compacted or deleted away are absent. :class:`TimedOutError` if the broker
    does not deliver them in ``timeout_s``."""
    if not ranges:
        return []
    consumer = Consumer(consumer_config(connection, client_id, f"{client_id}-unused"))
    try:
        goal: dict[tuple[str, int], int] = {}
        start: dict[tuple[str, int], int] = {}
        for (topic, partition), (first, end) in ranges.items():
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=TIMEOUT_S, cached=False
            )
            start[(topic, partition)], goal[(topic, partition)] = max(first, low), min(end, high)
        consumer.assign([TopicPartition(t, p, o) for (t, p), o in start.items()])
        records: list[InputRecord] = []
        read = dict(start)  # the next offset of each partition, as far as the records show
        deadline = time.monotonic() + timeout_s
        while any(read[tp] < goal[tp] for tp in goal):
            if time.monotonic() > deadline:
                raise TimedOutError(f"timed out reading back {sorted(ranges)} from the input")
            for record in input_records(consume_available(consumer, 10_000, 0.5)):
                tp = (record.topic, record.partition)
                if record.offset < goal[tp]:
                    records.append(record)
                read[tp] = max(read[tp], record.offset + 1)
            for position in consumer.position([TopicPartition(t, p) for t, p in goal]):
                if position.offset >= 0:  # past transaction markers and compacted gaps too
                    where = (position.topic, position.partition)
                    read[where] = max(read[where], position.offset)
        return records
    except KafkaException as error:
        raise KafkaIOError(f"reading back {sorted(ranges)} from the input: {described(error)}") from None
    finally:
        consumer.close()
