"""The input consumer: every partition of the input topic, positioned where the model's state ends.

One model learns from the whole stream, so it reads all partitions itself (manual assignment) rather
than sharing them with a consumer group; ``--group-id`` holds its committed offsets (for lag tools
and as the fallback start). Auto-commit is off: offsets are committed only at checkpoints.
"""

from __future__ import annotations

import time

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from stream_neuron.config import Settings
from stream_neuron.kafka_io.errors import StartupError
from stream_neuron.kafka_io.reconnect import RECONNECT_BACKOFF_MAX_MS
from stream_neuron.records import InputRecord


def open_input(settings: Settings, positions: dict[tuple[str, int], int]) -> KafkaConsumer:
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            group_id=settings.group_id,
            client_id=f"{settings.model_name}-input",
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            max_poll_records=settings.poll_max_records,
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=16 * 1024 * 1024,
            reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
        )
    except KafkaError as error:
        raise StartupError(f"no Kafka broker answers at {settings.bootstrap_servers}") from error
    deadline = time.monotonic() + 30
    partitions = consumer.partitions_for_topic(settings.input_topic)
    while not partitions and time.monotonic() < deadline:
        time.sleep(0.2)
        partitions = consumer.partitions_for_topic(settings.input_topic)
    if not partitions:
        consumer.close(autocommit=False)
        raise StartupError(f"input topic {settings.input_topic!r} has no partitions")
    assigned = [TopicPartition(settings.input_topic, p) for p in sorted(partitions)]
    consumer.assign(assigned)
    for tp in assigned:
        position = positions.get((tp.topic, tp.partition))
        if position is not None:
            consumer.seek(tp, position)
    return consumer


def poll_records(consumer: KafkaConsumer, timeout_ms: int, max_records: int) -> list[InputRecord]:
    polled = consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
    return [
        InputRecord(r.topic, r.partition, r.offset, r.key, r.value, list(r.headers or ()))
        for batch in polled.values()
        for r in batch
    ]


def input_lag(consumer: KafkaConsumer, positions: dict[tuple[str, int], int]) -> int | None:
    """Records behind the end of the input, from the fetcher's cached high watermarks (no request)."""
    total = 0
    for tp in consumer.assignment():
        highwater = consumer.highwater(tp)
        position = positions.get((tp.topic, tp.partition))
        if highwater is None or position is None:
            return None
        total += max(highwater - position, 0)
    return total
