"""``stream-neuron produce``: load events into a topic (a demo feed, a backfill, a load test)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TextIO

import numpy as np

from stream_neuron.errors import OperatorError
from stream_neuron.kafka_io.clients import stream_writer
from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.ports import KafkaIOError, WriteError
from stream_neuron.tools.sources import BadRow, Event, questions_and_answers

# A send waits this long for the topic's metadata or buffer space before it fails with one line.
SEND_BLOCK_MS = 15_000
FLUSH_TIMEOUT_S = 120.0


@dataclass
class ProduceSummary:
    sent: int = 0
    unlabelled: int = 0
    answers: int = 0
    bad_rows: int = 0
    seconds: float = 0.0


class ProgressBar:
    """A bar on a terminal (redrawn in place), a line every 10% in a log; silent for short loads."""

    WIDTH = 30

    def __init__(self, total: int | None, stream: TextIO = sys.stderr, min_total: int = 5_000) -> None:
        self.total = total
        self.stream = stream
        self.tty = stream.isatty()
        self.step = max((total or 100_000) // (100 if self.tty else 10), 1)
        self.enabled = total is None or total >= min_total
        self.started = time.monotonic()

    def update(self, sent: int, detail: str = "") -> None:
        if self.enabled and sent % self.step == 0:
            self._draw(sent, "" if self.tty else "\n", detail)

    def finish(self, sent: int, detail: str = "") -> None:
        if self.enabled and sent >= self.step and sent % self.step:
            self._draw(sent, "\n", detail)
        elif self.enabled and self.tty and sent >= self.step:
            print(file=self.stream)  # the bar's line, ended

    def _draw(self, sent: int, end: str, detail: str = "") -> None:
        rate = sent / max(time.monotonic() - self.started, 1e-9)
        if self.total:
            done = min(sent / self.total, 1.0)
            filled = int(done * self.WIDTH)
            bar = "#" * filled + "." * (self.WIDTH - filled)
            text = f"[{bar}] {done:4.0%} {sent:,}/{self.total:,} ({rate:,.0f}/s)"
        else:
            text = f"{sent:,} events sent ({rate:,.0f}/s)"
        print(("\r" if self.tty else "") + text + detail, end=end, file=self.stream, flush=True)


def produce_events(
    connection: Connection,
    topic: str,
    events: Iterable[Event | BadRow],
    rate: float | None = None,
    unlabelled_fraction: float = 0.0,
    seed: int = 0,
    progress: bool = False,
    total: int | None = None,
    label_delay: int | None = None,
    labels_topic: str | None = None,
) -> ProduceSummary:
    """Send ``events`` as JSON to ``topic`` (key: the event id); bad rows are reported and skipped.
    ``label_delay``: as questions and answers (:func:`questions_and_answers`), the answers to
    ``labels_topic`` when given. The topics must exist (the command creates them first)."""
    try:
        writer = stream_writer(connection, "stream-neuron-produce", SEND_BLOCK_MS / 1000)
    except KafkaIOError:
        raise OperatorError(f"no Kafka broker answers at {connection.bootstrap_servers}") from None
    rng = np.random.default_rng(seed)
    summary = ProduceSummary()
    bar = ProgressBar(total)
    started = time.monotonic()

    def unlabelled_some(items: Iterable[Event | BadRow]) -> Iterator[Event | BadRow]:
        for item in items:
            if not isinstance(item, BadRow) and unlabelled_fraction and rng.random() < unlabelled_fraction:
                item = {k: v for k, v in item.items() if k != "label"}
            yield item

    stream = unlabelled_some(events)
    if label_delay is not None:
        stream = questions_and_answers(stream, label_delay)
    for item in stream:
        if isinstance(item, BadRow):
            summary.bad_rows += 1
            print(f"skipped line {item.line}: {item.reason}", file=sys.stderr)
            continue
        answer = "features" not in item
        if answer:
            summary.answers += 1
        elif item.get("label") is None:
            summary.unlabelled += 1
        key = None if item.get("id") is None else str(item["id"]).encode()
        to = labels_topic if answer and labels_topic else topic
        try:
            writer.send(to, key, json.dumps(item).encode())
        except WriteError as error:
            writer.abandon()
            raise OperatorError(f"cannot send to {topic!r}: {error}") from None
        summary.sent += 1
        if rate:
            delay = started + summary.sent / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        if progress:
            bar.update(summary.sent)
    try:
        writer.finish(FLUSH_TIMEOUT_S)
    except WriteError as error:
        raise OperatorError(
            f"events sent to {topic!r} were not acknowledged by the broker: {error}"
        ) from None
    finally:
        if progress:
            bar.finish(summary.sent)
    summary.seconds = time.monotonic() - started
    return summary
