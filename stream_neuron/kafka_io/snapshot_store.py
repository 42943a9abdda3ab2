"""Reading the newest snapshot of a model from the compacted model topic."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from stream_neuron.kafka_io.errors import StartupError

log = logging.getLogger(__name__)


def load_snapshot(
    bootstrap_servers: str, model_topic: str, model_name: str, timeout_s: float = 60.0
) -> dict[str, Any] | None:
    """The last committed snapshot keyed ``model_name`` (None when the model is new)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        isolation_level="read_committed",
        client_id=f"{model_name}-snapshot-reader",
    )
    key = model_name.encode()
    latest: bytes | None = None
    try:
        partitions = [
            TopicPartition(model_topic, p) for p in sorted(consumer.partitions_for_topic(model_topic) or [])
        ]
        if not partitions:
            return None
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise StartupError(f"timed out reading snapshots from {model_topic}")
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    if record.key == key:
                        latest = record.value  # None: a tombstone deleted the model
    finally:
        consumer.close(autocommit=False)
    if latest is None:
        return None
    try:
        snapshot: dict[str, Any] = json.loads(latest)
    except ValueError as error:
        raise StartupError(
            f"the newest snapshot of {model_name!r} in {model_topic} is not valid JSON: {error}"
        ) from error
    log.info("restoring model %r version %s from %s", model_name, snapshot.get("version"), model_topic)
    return snapshot
