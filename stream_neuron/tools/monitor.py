"""``stream-neuron monitor``: the metrics topic as a table."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from stream_neuron.errors import OperatorError
from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.topic_reader import MissingTopicError, assigned_consumer, read_topic


def read_metrics(connection: Connection, topic: str, timeout_s: float = 30.0) -> list[dict[str, Any]]:
    """Every metrics record on ``topic`` from the beginning, in order."""
    records: list[dict[str, Any]] = []
    try:
        for _, value in read_topic(connection, topic, "stream-neuron-monitor", timeout_s, required=True):
            try:
                records.append(json.loads(value or b""))
            except ValueError:
                continue
    except MissingTopicError:
        raise OperatorError(f"metrics topic {topic!r} does not exist") from None
    return records


def follow_metrics(connection: Connection, topic: str) -> Iterator[dict[str, Any]]:
    """Every metrics record as it arrives, from the newest one on (runs until interrupted)."""
    with assigned_consumer(connection, topic, "stream-neuron-monitor") as (consumer, partitions):
        if not partitions:
            raise OperatorError(f"metrics topic {topic!r} does not exist")
        for tp, end in consumer.end_offsets(partitions).items():
            consumer.seek(tp, max(end - 1, 0))
        while True:
            for batch in consumer.poll(timeout_ms=1000).values():
                for record in batch:
                    try:
                        yield json.loads(record.value or b"")
                    except ValueError:
                        continue


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def format_metrics(record: dict[str, Any]) -> str:
    """One metrics record as an aligned two-column table."""
    rows = [
        ("model version", record.get("model_version")),
        ("events", record.get("events")),
        ("labelled", record.get("labelled")),
        ("dead letters", record.get("dead_letters")),
        ("window events", record.get("window", {}).get("events")),
        ("window log loss", record.get("window", {}).get("log_loss")),
        ("window accuracy", record.get("window", {}).get("accuracy")),
        ("cumulative log loss", record.get("cumulative", {}).get("log_loss")),
        ("cumulative accuracy", record.get("cumulative", {}).get("accuracy")),
        ("learning rate", record.get("learning_rate")),
        ("weight norm", record.get("weight_norm")),
        ("events/s", record.get("events_per_second")),
        ("lag", record.get("lag")),
        ("at", record.get("ts")),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {_fmt(value)}" for name, value in rows)
