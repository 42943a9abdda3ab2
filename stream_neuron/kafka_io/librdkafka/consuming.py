"""What every librdkafka consumer of this backend shares: taking a poll's batch without waiting for a
full one, turning messages into records, and asking a topic's partitions."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaException

from stream_neuron.kafka_io.librdkafka.config import CLIENT_LOGGER
from stream_neuron.kafka_io.librdkafka.errors import described
from stream_neuron.kafka_io.limits import OFFSETS_TIMEOUT_MS
from stream_neuron.records import InputRecord

log = logging.getLogger(__name__)

TIMEOUT_S = OFFSETS_TIMEOUT_MS / 1000


def topic_partitions(consumer: Consumer, topic: str, timeout_s: float = TIMEOUT_S) -> list[int] | None:
    """The topic's partitions as the broker tells them (``[]``: it knows none), or ``None`` when the
    metadata request failed (no answer within ``timeout_s``)."""
    try:
        entry = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
    except KafkaException as error:
        log.debug("metadata of %s: %s", topic, described(error))
        return None
    if entry is None or entry.error is not None:
        return []
    return sorted(entry.partitions)


def partitions_of(consumer: Consumer, topic: str, wait_s: float) -> list[int]:
    """The topic's partitions, waiting up to ``wait_s`` for it to show them (``[]``: it does not)."""
    deadline = time.monotonic() + wait_s
    while True:
        found = topic_partitions(consumer, topic)
        if found:
            return found
        if time.monotonic() >= deadline:
            return []
        time.sleep(0.2)


def consume_available(consumer: Consumer, max_records: int, timeout_s: float) -> list[Any]:
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
    CLIENT_LOGGER.warning("fetch: %s", described(error))


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
