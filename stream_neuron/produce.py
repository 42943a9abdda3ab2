"""``stream-neuron produce``: load events into a topic (a demo feed, a backfill, a load test)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from kafka import KafkaProducer
from kafka.errors import KafkaError

from stream_neuron.sources import BadRow, Event


@dataclass
class ProduceSummary:
    sent: int = 0
    unlabelled: int = 0
    bad_rows: int = 0
    seconds: float = 0.0


def produce_events(
    bootstrap_servers: str,
    topic: str,
    events: Iterable[Event | BadRow],
    rate: float | None = None,
    unlabelled_fraction: float = 0.0,
    seed: int = 0,
    progress: bool = False,
) -> ProduceSummary:
    """Send ``events`` as JSON to ``topic`` (key: the event id); bad rows are reported and skipped."""
    try:
        producer = KafkaProducer(
            bootstrap_servers=bootstrap_servers, acks="all", linger_ms=10, batch_size=256 * 1024
        )
    except KafkaError:
        raise SystemExit(f"no Kafka broker answers at {bootstrap_servers}") from None
    rng = np.random.default_rng(seed)
    summary = ProduceSummary()
    failures: list[BaseException] = []
    started = time.monotonic()
    for item in events:
        if isinstance(item, BadRow):
            summary.bad_rows += 1
            print(f"skipped line {item.line}: {item.reason}", file=sys.stderr)
            continue
        if unlabelled_fraction and rng.random() < unlabelled_fraction:
            item = {k: v for k, v in item.items() if k != "label"}
        if item.get("label") is None:
            summary.unlabelled += 1
        key = None if item.get("id") is None else str(item["id"]).encode()
        producer.send(topic, key=key, value=json.dumps(item).encode()).add_errback(failures.append)
        summary.sent += 1
        if rate:
            delay = started + summary.sent / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        if progress and summary.sent % 10_000 == 0:
            print(f"\r{summary.sent:,} events sent", end="", file=sys.stderr, flush=True)
    producer.flush()
    producer.close()
    if progress and summary.sent >= 10_000:
        print(file=sys.stderr)
    summary.seconds = time.monotonic() - started
    if failures:
        raise SystemExit(f"{len(failures)} events were not acknowledged by the broker: {failures[0]!r}")
    return summary
