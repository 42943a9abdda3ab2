"""The input consumer on librdkafka (``--kafka-client confluent``): the same contract as
``consumer.InputConsumer`` (every partition of the input topics, positioned where the model's state
ends, offsets committed only by a checkpoint, ``read_committed``), on confluent-kafka's ``Consumer``.

librdkafka fetches in its own threads and hands a poll's records over in one call (``consume``), and
its reconnects and retries never surface as exceptions: a paused broker is a poll that returns
nothing. Positions are set by assigning with offsets (a seek on a partition not yet fetching is
refused), so :meth:`seek` re-assigns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.errors import StartupError
from stream_neuron.kafka_io.limits import (
    FETCH_MAX_BYTES,
    INPUT_METADATA_WAIT_S,
    MAX_PARTITION_FETCH_BYTES,
    OFFSETS_TIMEOUT_MS,
    RECONNECT_BACKOFF_MAX_MS,
)
from stream_neuron.records import InputRecord

log = logging.getLogger(__name__)

PARTITION_CHECK_S = 10.0
Positions = Mapping[tuple[str, int], int]


def rdkafka() -> Any:
    """confluent-kafka, or a one-line error saying how to install it."""
    try:
        import confluent_kafka
        import confluent_kafka.admin
    except ImportError:
        raise StartupError(
            "--kafka-client confluent needs confluent-kafka: pip install 'stream-neuron[confluent]'"
        ) from None
    return confluent_kafka


def rd_consumer_config(connection: Connection, client_id: str, group_id: str) -> dict[str, Any]:
    return {
        **connection.rdkafka_config(client_id),
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "isolation.level": "read_committed",
        "auto.offset.reset": "earliest",
        "fetch.max.bytes": FETCH_MAX_BYTES,
        "max.partition.fetch.bytes": MAX_PARTITION_FETCH_BYTES,
        "receive.message.max.bytes": FETCH_MAX_BYTES + 1024 * 1024,
        "reconnect.backoff.max.ms": RECONNECT_BACKOFF_MAX_MS,
        "enable.partition.eof": False,
    }


class RdInputConsumer:
    """Reads the input topics from the given positions (a partition without one starts at the group's
    committed offset, else at the beginning)."""

    def __init__(
        self,
        connection: Connection,
        topic: str | list[str],
        group_id: str,
        client_id: str,
        max_poll_records: int,
        positions: Positions,
    ) -> None:
        kafka = rdkafka()
        self._kafka = kafka
        self._consumer = kafka.Consumer(rd_consumer_config(connection, client_id, group_id))
        self._connection, self._group_id = connection, group_id
        self.topics = [topic] if isinstance(topic, str) else list(topic)
        self._next_partition_check = time.monotonic() + PARTITION_CHECK_S
        self._offsets: dict[tuple[str, int], int] = {}  # where each assigned partition starts
        partitions: list[tuple[str, int]] = []
        for name in self.topics:
            found = self._partitions_of(name, INPUT_METADATA_WAIT_S)
            if not found:
                self._consumer.close()
                raise StartupError(f"input topic {name!r} has no partitions")
            partitions += [(name, p) for p in found]
        committed = self._committed(partitions)
        start = {tp: committed.get(tp) for tp in partitions}
        start.update({tp: offset for tp, offset in positions.items() if tp in start})
        self._assign(start)

    def _partitions_of(self, topic: str, wait_s: float) -> list[int]:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                metadata = self._consumer.list_topics(topic, timeout=OFFSETS_TIMEOUT_MS / 1000)
                entry = metadata.topics.get(topic)
                if entry is not None and entry.error is None and entry.partitions:
                    return sorted(entry.partitions)
            except self._kafka.KafkaException as error:
                log.debug("metadata of %s: %s", topic, error)
            if time.monotonic() >= deadline:
                return []
            time.sleep(0.2)

    def _assign(self, start: Mapping[tuple[str, int], int | None]) -> None:
        kafka = self._kafka
        self._offsets = {
            tp: kafka.OFFSET_BEGINNING if offset is None else offset for tp, offset in start.items()
        }
        self._consumer.assign([kafka.TopicPartition(t, p, o) for (t, p), o in self._offsets.items()])

    def assignment(self) -> list[tuple[str, int]]:
        return sorted(self._offsets)

    def poll(self, timeout_ms: int, max_records: int) -> list[InputRecord]:
        if time.monotonic() >= self._next_partition_check:
            self._pick_up_new_partitions()
        return input_records(consume_available(self._consumer, max_records, timeout_ms / 1000))

    def _pick_up_new_partitions(self) -> None:
        self._next_partition_check = time.monotonic() + PARTITION_CHECK_S
        new: dict[tuple[str, int], int | None] = {}
        for name in self.topics:
            for partition in self._partitions_of(name, 0):
                if (name, partition) not in self._offsets:
                    new[(name, partition)] = None
        if new:
            kafka = self._kafka
            self._consumer.incremental_assign(
                [kafka.TopicPartition(t, p, kafka.OFFSET_BEGINNING) for t, p in new]
            )
            self._offsets.update({tp: kafka.OFFSET_BEGINNING for tp in new})
            log.info("input has new partitions %s: reading them", [f"{t}:{p}" for t, p in new])

    def _watermarks(self, cached: bool) -> dict[tuple[str, int], tuple[int, int]] | None:
        kafka, ranges = self._kafka, {}
        for topic, partition in self._offsets:
            tp = kafka.TopicPartition(topic, partition)
            try:
                low, high = self._consumer.get_watermark_offsets(
                    tp, timeout=OFFSETS_TIMEOUT_MS / 1000, cached=cached
                )
            except kafka.KafkaException:
                return None
            if high < 0:
                return None
            ranges[(topic, partition)] = (low, high)
        return ranges

    def offset_ranges(self) -> dict[tuple[str, int], tuple[int, int]]:
        """(first offset, end offset) of every assigned partition, asked of the broker now."""
        ranges = self._watermarks(cached=False)
        if ranges is None:
            raise StartupError("the broker did not say where the input's partitions begin and end")
        return ranges

    def _positions(self) -> dict[tuple[str, int], int | None]:
        kafka = self._kafka
        partitions = [kafka.TopicPartition(t, p) for t, p in self._offsets]
        positions: dict[tuple[str, int], int | None] = {}
        for tp in self._consumer.position(partitions):
            positions[(tp.topic, tp.partition)] = tp.offset if tp.offset >= 0 else None
        return positions

    def exhausted(self) -> bool:
        """True when every partition has been read to its end, as the broker says now; False when it
        has not, or the broker does not answer (a pause is not the end of the input)."""
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

    def seek(self, positions: Mapping[tuple[str, int], int | None]) -> None:
        """Move to ``positions``; ``None`` means the beginning."""
        start: dict[tuple[str, int], int | None] = {
            tp: None if offset == self._kafka.OFFSET_BEGINNING else offset
            for tp, offset in self._offsets.items()
        }
        current = self._positions()
        start.update({tp: position for tp, position in current.items() if position is not None})
        start.update(positions)
        self._consumer.unassign()
        self._assign(start)

    def _committed(self, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int | None]:
        kafka = self._kafka
        try:
            committed = self._consumer.committed(
                [kafka.TopicPartition(t, p) for t, p in partitions], timeout=OFFSETS_TIMEOUT_MS / 1000
            )
        except kafka.KafkaException as error:
            if self._group_denied():
                who = self._connection.sasl_username or "this client"
                raise StartupError(
                    f"user {who!r} may not use consumer group {self._group_id!r} (GroupAuthorizationFailed): "
                    "grant READ and DESCRIBE on that group, or set --group-id"
                ) from None
            raise StartupError(f"cannot read the group's committed offsets: {error}") from None
        return {(tp.topic, tp.partition): tp.offset if tp.offset >= 0 else None for tp in committed}

    def _group_denied(self) -> bool:
        """Whether the group is out of this user's rights (librdkafka's offset fetch only times out)."""
        kafka = self._kafka
        admin = kafka.admin.AdminClient(self._connection.rdkafka_config("group-check"))
        future = admin.describe_consumer_groups([self._group_id], request_timeout=10)[self._group_id]
        try:
            future.result(timeout=15)
        except kafka.KafkaException as error:
            return bool(error.args and error.args[0].code() == kafka.KafkaError.GROUP_AUTHORIZATION_FAILED)
        except Exception:  # a timeout, a broker away: not a denial we can name
            return False
        return False

    def committed_positions(self) -> dict[tuple[str, int], int | None]:
        """The group's committed offset of every assigned partition (``None``: nothing committed)."""
        return self._committed(self.assignment())

    def commit(self, positions: Positions, wait: bool) -> None:
        """Commit ``positions`` for the group; ``wait=False`` sends the commit without waiting."""
        if not positions:
            return
        kafka = self._kafka
        offsets = [kafka.TopicPartition(t, p, o) for (t, p), o in positions.items()]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=not wait)
        except kafka.KafkaException as error:
            if wait:
                raise StartupError(f"committing the input offsets failed: {error}") from None
            log.debug("asynchronous commit: %s", error)

    def lag(self, positions: Positions) -> int | None:
        """Records behind the end of the input, from the cached high watermarks (no request)."""
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

    def group_metadata(self) -> Any:
        """What a transactional producer needs to commit this group's offsets."""
        return self._consumer.consumer_group_metadata()

    def close(self) -> None:
        self._consumer.close()


def rd_read_ranges(
    connection: Connection,
    client_id: str,
    ranges: Mapping[tuple[str, int], tuple[int, int]],
    timeout_s: float = 120.0,
) -> list[InputRecord]:
    """``consumer.read_ranges`` on librdkafka: the committed records of each (topic, partition) from its
    first offset to (not including) its end, in order; records compacted or deleted away are absent."""
    if not ranges:
        return []
    kafka = rdkafka()
    consumer = kafka.Consumer(rd_consumer_config(connection, client_id, f"{client_id}-unused"))
    try:
        goal: dict[tuple[str, int], int] = {}
        start: dict[tuple[str, int], int] = {}
        for (topic, partition), (first, end) in ranges.items():
            try:
                low, high = consumer.get_watermark_offsets(
                    kafka.TopicPartition(topic, partition), timeout=OFFSETS_TIMEOUT_MS / 1000, cached=False
                )
            except kafka.KafkaException as error:
                raise StartupError(f"cannot read back {topic}:{partition} from the input: {error}") from None
            start[(topic, partition)], goal[(topic, partition)] = max(first, low), min(end, high)
        consumer.assign([kafka.TopicPartition(t, p, o) for (t, p), o in start.items()])
        records: list[InputRecord] = []
        read = dict(start)  # the next offset of each partition, as far as the records show
        deadline = time.monotonic() + timeout_s
        while any(read[tp] < goal[tp] for tp in goal):
            if time.monotonic() > deadline:
                raise StartupError(f"timed out reading back {sorted(ranges)} from the input")
            for record in input_records(consume_available(consumer, 10_000, 0.5)):
                tp = (record.topic, record.partition)
                if record.offset < goal[tp]:
                    records.append(record)
                read[tp] = max(read[tp], record.offset + 1)
            for tp in consumer.position([kafka.TopicPartition(t, p) for t, p in goal]):
                if tp.offset >= 0:  # past transaction markers and compacted gaps too
                    read[(tp.topic, tp.partition)] = max(read[(tp.topic, tp.partition)], tp.offset)
        return records
    finally:
        consumer.close()


def consume_available(consumer: Any, max_records: int, timeout_s: float) -> list[Any]:
    """What the client holds now, up to ``max_records``; when it holds nothing, the first message to
    arrive within ``timeout_s`` and what came with it. (``consume(n, timeout)`` itself waits until it
    has ``n`` messages or the timeout passes: at 2,000 events/s that held each one about 200 ms.)"""
    messages: list[Any] = consumer.consume(max_records, 0)
    if messages or timeout_s <= 0:
        return messages
    messages = consumer.consume(1, timeout_s)
    if messages and max_records > 1:
        messages += consumer.consume(max_records - 1, 0)
    return messages


def _fetch_error(error: Any) -> None:
    """librdkafka retries on its own; shown once by the client-log digest."""
    logging.getLogger("kafka.rdkafka").warning("fetch: %s", error)


def input_records(messages: list[Any], on_error: Callable[[Any], None] = _fetch_error) -> list[InputRecord]:
    """The records of a ``consume`` batch; a message carrying an error goes to ``on_error``."""
    records: list[InputRecord] = []
    append = records.append
    for message in messages:
        error = message.error()
        if error is not None:
            on_error(error)
            continue
        try:
            append(InputRecord(
                message.topic(), message.partition(), message.offset(), message.key(), message.value(),
                message.headers() or [], message.timestamp()[1],
            ))  # fmt: skip
        except (UnicodeDecodeError, SystemError):  # a header key confluent-kafka cannot decode
            append(_record_without_headers(message))
    return records


def _record_without_headers(message: Any) -> InputRecord:
    """A record whose header key is not UTF-8, without its headers: confluent-kafka fails to decode
    such a key, and the record must still be read (its headers only travel with its dead letter). The
    failed decode leaves Python's error set, so the next tuple creation fails once: hence the retry."""
    log.debug("%s:%d:%d: a header key is not UTF-8: headers left out", message.topic(),
              message.partition(), message.offset())  # fmt: skip
    headers: list[tuple[str, bytes]] = []
    fields = (message.topic(), message.partition(), message.offset(), message.key(), message.value(),
              headers, message.timestamp()[1])  # fmt: skip
    try:
        return InputRecord(*fields)
    except SystemError:
        return InputRecord(*fields)
