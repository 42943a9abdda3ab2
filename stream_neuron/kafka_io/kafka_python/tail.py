"""Every partition of one topic on kafka-python (the :class:`~stream_neuron.kafka_io.ports.TopicTail`
port): assigned, no group, no commits, ``read_committed``."""

from __future__ import annotations

from kafka import TopicPartition

from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.errors import TimedOutError
from stream_neuron.kafka_io.kafka_python.config import client_config, new_consumer
from stream_neuron.kafka_io.kafka_python.errors import translated
from stream_neuron.kafka_io.limits import MAX_PARTITION_FETCH_BYTES, OFFSETS_TIMEOUT_MS
from stream_neuron.kafka_io.ports import TailRecord


@translated
class KafkaPythonTopicTail:
    def __init__(self, connection: Connection, topic: str, client_id: str, fetch_wait_ms: int) -> None:
        self.topic = topic
        self._consumer = new_consumer(
            connection,
            **client_config(connection, client_id),
            enable_auto_commit=False,
            isolation_level="read_committed",
            fetch_max_wait_ms=fetch_wait_ms,
            max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES,
            request_timeout_ms=OFFSETS_TIMEOUT_MS + 5_000,
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
        for tp, end in self._consumer.end_offsets(self._tps, timeout_ms=OFFSETS_TIMEOUT_MS).items():
            self._consumer.seek(tp, max(end - back, 0))
        for tp in self._tps:  # resolve the positions now
            self._consumer.position(tp, timeout_ms=OFFSETS_TIMEOUT_MS)

    def start_at(self, offsets: dict[int, int]) -> None:
        self._consumer.assign([TopicPartition(self.topic, p) for p in offsets])
        for p, offset in offsets.items():
            self._consumer.seek(TopicPartition(self.topic, p), offset)

    def first_offsets(self) -> dict[int, int]:
        found = self._consumer.beginning_offsets(self._tps, timeout_ms=OFFSETS_TIMEOUT_MS)
        return {tp.partition: first for tp, first in found.items()}

    def end_offsets(self) -> dict[int, int]:
        found = self._consumer.end_offsets(self._tps, timeout_ms=OFFSETS_TIMEOUT_MS)
        return {tp.partition: end for tp, end in found.items()}

    def offsets_for_time(self, ms: int) -> dict[int, int | None]:
        found = self._consumer.offsets_for_times(dict.fromkeys(self._tps, ms), timeout_ms=OFFSETS_TIMEOUT_MS)
        return {tp.partition: (found[tp].offset if found[tp] else None) for tp in self._tps}

    def position(self, partition: int) -> int:
        return self._position(TopicPartition(self.topic, partition))

    def _position(self, tp: TopicPartition) -> int:
        position = self._consumer.position(tp, timeout_ms=OFFSETS_TIMEOUT_MS)
        if position is None:
            raise TimedOutError(f"the position of {tp.topic}:{tp.partition} is not known yet")
        return int(position)

    def reached(self, ends: dict[int, int]) -> bool:
        return all(self._position(tp) >= ends[tp.partition] for tp in self._consumer.assignment())

    def poll(self, timeout_ms: int) -> list[TailRecord]:
        return [
            TailRecord(r.partition, r.offset, r.key, r.value)
            for records in self._consumer.poll(timeout_ms=timeout_ms).values()
            for r in records
        ]

    def close(self) -> None:
        self._consumer.close(autocommit=False)
