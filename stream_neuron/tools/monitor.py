"""``stream-neuron monitor``: the metrics topic as a table."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from stream_neuron.errors import OperatorError
from stream_neuron.kafka_io.clients import open_tail
from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.ports import TopicMissingError
from stream_neuron.kafka_io.topic_reader import read_topic
from stream_neuron.tools.metrics_view import Malformed, clean_record

LOOK_BACK = 64
READ_TIMEOUT_S = 30.0


def read_metrics(
    connection: Connection, topic: str, timeout_s: float = 30.0
) -> list[dict[str, Any] | Malformed]:
    """Every record on ``topic`` from the beginning, in order, cleaned (:func:`clean_record`)."""
    try:
        return [
            clean_record(value)
            for _, value in read_topic(connection, topic, "stream-neuron-monitor", timeout_s, required=True)
        ]
    except TopicMissingError:
        raise OperatorError(f"metrics topic {topic!r} does not exist") from None


def follow_metrics(connection: Connection, topic: str) -> Iterator[dict[str, Any] | Malformed]:
    """The newest record, then every record as it arrives, cleaned (runs until interrupted). The newest
    is looked for among the last :data:`LOOK_BACK` offsets: on a topic an exactly-once run writes,
    the last offsets are transaction markers, not records."""
    tail = open_tail(connection, topic, "stream-neuron-monitor")
    try:
        if not tail.partitions:
            raise OperatorError(f"metrics topic {topic!r} does not exist")
        ends = tail.end_offsets()
        tail.start_from_end(back=LOOK_BACK)
        newest: list[bytes | None] = []  # the last record before the end, when there is one
        later: list[bytes | None] = []
        deadline = time.monotonic() + READ_TIMEOUT_S
        while not tail.reached(ends) and time.monotonic() < deadline:
            for record in tail.poll(500):
                if record.offset < ends[record.partition]:
                    newest = [record.value]
                else:
                    later.append(record.value)
        for value in [*newest, *later]:
            yield clean_record(value)
        while True:
            for record in tail.poll(1000):
                yield clean_record(record.value)
    finally:
        tail.close()


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def format_metrics(record: dict[str, Any] | Malformed) -> str:
    """One (cleaned) metrics record as an aligned two-column table."""
    if isinstance(record, Malformed):
        return f"a malformed metrics record ({record})"
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
        ("diverging", record.get("diverging")),
        ("events/s", record.get("events_per_second")),
        ("lag", record.get("lag")),
    ]
    labels = record.get("labels")
    if labels:
        rows += [
            ("pending questions", labels["pending"]),
            ("answered", labels["answered"]),
            ("expired questions", labels["expired"]),
            ("unmatched answers", labels["unmatched_answers"]),
            ("duplicate answers", labels["duplicate_answers"]),
            ("duplicate questions", labels["duplicate_questions"]),
        ]
    drift = record.get("drift")
    if drift:
        rows += [
            (f"drifts ({drift['detector']})", drift["count"]),
            ("labelled since", drift["events_since_last"]),
        ]
    rows.append(("at", record.get("ts")))
    width = max(len(name) for name, _ in rows)
    table = "\n".join(f"{name:<{width}}  {_fmt(value)}" for name, value in rows)
    if record.get("candidates"):
        table += "\n\n" + format_candidates(record)
    return table


def format_candidates(record: dict[str, Any]) -> str:
    """The candidates of a (cleaned) metrics record, one row each; the champion marked."""
    header = ("", "candidate", "learning rate", "optimizer", "window log loss", "window accuracy",
              "cumulative log loss", "cumulative accuracy", "diverging")  # fmt: skip
    rows = [header]
    for j, c in enumerate(record["candidates"]):
        rows.append(
            (
                "*" if c["champion"] else "",
                str(j),
                _fmt(c["learning_rate"]),
                c["optimizer"] or "-",
                _fmt(c["window"]["log_loss"]),
                _fmt(c["window"]["accuracy"]),
                _fmt(c["cumulative"]["log_loss"]),
                _fmt(c["cumulative"]["accuracy"]),
                "yes" if c["diverging"] else "no",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    changes = record["champion_changes"]
    times = "time" if changes == 1 else "times"
    lines.append(f"* champion: candidate {record['champion']} (changed {changes} {times})")
    return "\n".join(lines)
