"""Every partition of one topic, read by a plain consumer (assigned, no group membership, no commits),
on either Kafka client: from the beginning to the end the topic has now (snapshots, metrics), or from
its end on (the writer claim's watch, a scorer's model follower, ``monitor --follow``).

``read_committed`` on both: an exactly-once trainer's records count once their transaction commits,
and the end offsets are the last stable offsets (librdkafka has honoured the isolation level in its
watermark query since 1.8). On librdkafka the fetching runs in its own threads, outside the GIL.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from kafka import KafkaConsumer, TopicPartition

from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.errors import StartupError
from stream_neuron.kafka_io.rd_input import consume_available, rdkafka

log = logging.getLogger(__name__)

METADATA_TIMEOUT_S = 10.0
RETRY_S = 0.1
PARTITION_FETCH_BYTES = 16 * 1024 * 1024  # bulk reads (``fit``'s ranges) go as fast as records come


class TailRecord(NamedTuple):
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class TopicTail(Protocol):
    topic: str
    partitions: list[int]  # empty when the topic does not exist

    def start_from_beginning(self) -> None: ...

    def start_from_end(self, back: int = 0) -> None:
        """Read from ``back`` records before each partition's end (0: only what comes next); the end
        is resolved now, so nothing written after this call is missed."""

    def start_at(self, offsets: dict[int, int]) -> None:
        """Read only the partitions in ``offsets``, each from its offset."""

    def first_offsets(self) -> dict[int, int]: ...

    def end_offsets(self) -> dict[int, int]: ...

    def offsets_for_time(self, ms: int) -> dict[int, int | None]:
        """Each partition's first offset with a timestamp at or after ``ms`` (``None``: none)."""

    def position(self, partition: int) -> int: ...

    def reached(self, ends: dict[int, int]) -> bool:
        """Every partition read up to ``ends``."""

    def poll(self, timeout_ms: int) -> list[TailRecord]: ...

    def close(self) -> None: ...


def open_tail(connection: Connection, topic: str, client_id: str, fetch_wait_ms: int = 500) -> TopicTail:
    """A tail of ``topic`` on the connection's client; nothing is read before a ``start_from_*``."""
    if connection.client == "confluent":
        return RdTopicTail(connection, topic, client_id, fetch_wait_ms)
    return KafkaPythonTopicTail(connection, topic, client_id, fetch_wait_ms)


class KafkaPythonTopicTail:
    def __init__(self, connection: Connection, topic: str, client_id: str, fetch_wait_ms: int) -> None:
        self.topic = topic
        self._consumer = KafkaConsumer(
            **connection.client_config(client_id),
            enable_auto_commit=False,
            isolation_level="read_committed",
            fetch_max_wait_ms=fetch_wait_ms,
            max_partition_fetch_bytes=PARTITION_FETCH_BYTES,
        )
        try:
            self.partitions = sorted(self._consumer.partitions_for_topic(topic) or [])
        except BaseException:
            self._consumer.close(autocommit=False)
            raise
        self._tps = [TopicPartition(topic, p) for p in self.partitions]

    def start_from_beginning(self) -> None:
        if self._tps:
            self._consumer.assign(self._tps)
            self._consumer.seek_to_beginning(*self._tps)

    def start_from_end(self, back: int = 0) -> None:
        if not self._tps:
            return
        self._consumer.assign(self._tps)
        for tp, end in self._consumer.end_offsets(self._tps).items():
            self._consumer.seek(tp, max(end - back, 0))
        for tp in self._tps:  # resolve the positions now
            self._consumer.position(tp)

    def start_at(self, offsets: dict[int, int]) -> None:
        self._consumer.assign([TopicPartition(self.topic, p) for p in offsets])
        for p, offset in offsets.items():
            self._consumer.seek(TopicPartition(self.topic, p), offset)

    def first_offsets(self) -> dict[int, int]:
        return {tp.partition: first for tp, first in self._consumer.beginning_offsets(self._tps).items()}

    def end_offsets(self) -> dict[int, int]:
        return {tp.partition: end for tp, end in self._consumer.end_offsets(self._tps).items()}

    def offsets_for_time(self, ms: int) -> dict[int, int | None]:
        found = self._consumer.offsets_for_times(dict.fromkeys(self._tps, ms))
        return {tp.partition: (found[tp].offset if found[tp] else None) for tp in self._tps}

    def position(self, partition: int) -> int:
        return int(self._consumer.position(TopicPartition(self.topic, partition)))

    def reached(self, ends: dict[int, int]) -> bool:
        return all(self._consumer.position(tp) >= ends[tp.partition] for tp in self._consumer.assignment())

    def poll(self, timeout_ms: int) -> list[TailRecord]:
        return [
            TailRecord(r.partition, r.offset, r.key, r.value)
            for records in self._consumer.poll(timeout_ms=timeout_ms).values()
            for r in records
        ]

    def close(self) -> None:
        self._consumer.close(autocommit=False)


class RdTopicTail:
    def __init__(self, connection: Connection, topic: str, client_id: str, fetch_wait_ms: int) -> None:
        kafka = rdkafka()
        self._kafka, self.topic = kafka, topic
        self._consumer = kafka.Consumer(
            {
                **connection.rdkafka_config(client_id),
                "group.id": client_id,  # required by the client; never joined (assign, no commits)
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": fetch_wait_ms,
                "max.partition.fetch.bytes": PARTITION_FETCH_BYTES,
                "enable.partition.eof": False,
            }
        )
        self._start: dict[int, int] = {}
        self._not_yet = frozenset(
            getattr(kafka.KafkaError, name)
            for name in ("NOT_LEADER_FOR_PARTITION", "LEADER_NOT_AVAILABLE", "UNKNOWN_TOPIC_OR_PART")
            if hasattr(kafka.KafkaError, name)
        )
        try:
            entry = self._consumer.list_topics(topic, timeout=METADATA_TIMEOUT_S).topics.get(topic)
        except kafka.KafkaException as error:
            self._consumer.close()
            raise StartupError(
                f"no Kafka broker answers at {connection.bootstrap_servers} (metadata of {topic!r}: {error})"
            ) from None
        # A topic created a moment ago lists its partitions with no leader yet (an error on the entry):
        # they are read once it has one. A missing topic lists none.
        self.partitions = sorted(entry.partitions) if entry is not None and entry.partitions else []

    def _asked(self, call: Callable[[], Any], what: str) -> Any:
        """``call()``, again while the broker answers that it cannot tell yet (a topic created a moment
        ago has no leader yet: kafka-python waits for one by itself, librdkafka says so)."""
        kafka = self._kafka
        deadline = time.monotonic() + METADATA_TIMEOUT_S
        while True:
            try:
                return call()
            except kafka.KafkaException as exception:
                error = exception.args[0]
                if time.monotonic() >= deadline or not (error.retriable() or error.code() in self._not_yet):
                    raise StartupError(f"{what} of {self.topic!r}: {error.name()}: {error.str()}") from None
            time.sleep(RETRY_S)

    def _watermarks(self, partition: int) -> tuple[int, int]:
        tp = self._kafka.TopicPartition(self.topic, partition)
        low, high = self._asked(
            lambda: self._consumer.get_watermark_offsets(tp, timeout=METADATA_TIMEOUT_S, cached=False),
            "the offsets",
        )
        return int(low), int(high)

    def _assign(self, start: dict[int, int]) -> None:
        self._start = start
        kafka = self._kafka
        self._consumer.assign([kafka.TopicPartition(self.topic, p, o) for p, o in start.items()])

    def start_from_beginning(self) -> None:
        self._assign({p: self._watermarks(p)[0] for p in self.partitions})

    def start_from_end(self, back: int = 0) -> None:
        start = {}
        for p in self.partitions:
            low, high = self._watermarks(p)
            start[p] = max(high - back, low)
        self._assign(start)

    def start_at(self, offsets: dict[int, int]) -> None:
        self._assign(dict(offsets))

    def first_offsets(self) -> dict[int, int]:
        return {p: self._watermarks(p)[0] for p in self.partitions}

    def end_offsets(self) -> dict[int, int]:
        return {p: self._watermarks(p)[1] for p in self.partitions}

    def offsets_for_time(self, ms: int) -> dict[int, int | None]:
        kafka = self._kafka
        asked = [kafka.TopicPartition(self.topic, p, ms) for p in self.partitions]
        found = self._asked(
            lambda: self._consumer.offsets_for_times(asked, timeout=METADATA_TIMEOUT_S), "the offsets by time"
        )
        return {tp.partition: (tp.offset if tp.offset >= 0 else None) for tp in found}

    def position(self, partition: int) -> int:
        [tp] = self._consumer.position([self._kafka.TopicPartition(self.topic, partition)])
        return int(tp.offset) if tp.offset >= 0 else self._start[partition]

    def reached(self, ends: dict[int, int]) -> bool:
        kafka = self._kafka
        tps = [kafka.TopicPartition(self.topic, p) for p in self._start]
        for tp in self._consumer.position(tps):
            position = tp.offset if tp.offset >= 0 else self._start[tp.partition]
            if position < ends[tp.partition]:
                return False
        return True

    def poll(self, timeout_ms: int) -> list[TailRecord]:
        messages = consume_available(self._consumer, 500, timeout_ms / 1000)
        records = []
        for message in messages:
            error: Any = message.error()
            if error is not None:  # librdkafka retries on its own; shown once by the client-log digest
                logging.getLogger("kafka.rdkafka").warning("fetch from %s: %s", self.topic, error)
                continue
            records.append(TailRecord(message.partition(), message.offset(), message.key(), message.value()))
        return records

    def close(self) -> None:
        self._consumer.close()
