"""Skipping kafka-python's key hashing where it cannot matter.

kafka-python picks a keyed record's partition with a pure-Python murmur2 hash (~5 us a record). On a
topic with one partition every key lands in partition 0 anyway, so the producer is told so directly;
on a topic with several, the default keyed partitioning (same key, same partition) is kept.
"""

from __future__ import annotations

from kafka import KafkaProducer


class PartitionHints:
    def __init__(self, producer: KafkaProducer) -> None:
        self.producer = producer
        self._single: dict[str, int | None] = {}

    def for_topic(self, topic: str) -> int | None:
        """0 for a one-partition topic, else None (let the partitioner choose)."""
        hint = self._single.get(topic, -1)
        if hint == -1:
            partitions = self.producer.partitions_for(topic)
            hint = 0 if partitions is not None and len(partitions) == 1 else None
            self._single[topic] = hint
        return hint
