"""Every partition of one topic on librdkafka (the :class:`~stream_neuron.kafka_io.ports.TopicTail`
port): assigned, no group, no commits, ``read_committed``. The end offsets are the last stable offsets
(librdkafka has honoured the isolation level in its watermark query since 1.8), and the fetching runs
in the client's own threads, outside the GIL."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.errors import BrokerUnavailableError
from stream_neuron.kafka_io.librdkafka.config import CLIENT_LOGGER, consumer_config
from stream_neuron.kafka_io.librdkafka.consuming import consume_available
from stream_neuron.kafka_io.librdkafka.errors import NOT_YET, described, neutral, translated
from stream_neuron.kafka_io.limits import OFFSETS_TIMEOUT_MS
from stream_neuron.kafka_io.ports import TailRecord

METADATA_TIMEOUT_S = OFFSETS_TIMEOUT_MS / 1000
RETRY_S = 0.1
POLL_RECORDS = 500


@translated
class RdTopicTail:
    def __init__(self, connection: Connection, topic: str, client_id: str, fetch_wait_ms: int) -> None:
        self.topic = topic
        # The input's reader, told how long the broker may hold a fetch; its group id is required by
        # the client and never joined (assign, no commits).
        self._consumer = Consumer(
            {**consumer_config(connection, client_id, client_id), "fetch.wait.max.ms": fetch_wait_ms}
        )
        self._start: dict[int, int] = {}
        try:
            entry = self._consumer.list_topics(topic, timeout=METADATA_TIMEOUT_S).topics.get(topic)
        except KafkaException as error:
            self._consumer.close()
            raise BrokerUnavailableError(
                f"no Kafka broker answers at {connection.bootstrap_servers} (metadata of {topic!r}: "
                f"{described(error)})"
            ) from None
        # A topic created a moment ago lists its partitions with no leader yet (an error on the entry):
        # they are read once it has one. A missing topic lists none.
        self.partitions = sorted(entry.partitions) if entry is not None and entry.partitions else []

    def _asked(self, call: Callable[[], Any], what: str) -> Any:
        """``call()``, again while the broker answers that it cannot tell yet (a topic created a moment
        ago has no leader yet: kafka-python waits for one by itself, librdkafka says so)."""
        deadline = time.monotonic() + METADATA_TIMEOUT_S
        while True:
            try:
                return call()
            except KafkaException as exception:
                error = exception.args[0]
                if time.monotonic() >= deadline or not (error.retriable() or error.code() in NOT_YET):
                    raise neutral(error, f"{what} of {self.topic!r}") from None
            time.sleep(RETRY_S)

    def _watermarks(self, partition: int) -> tuple[int, int]:
        tp = TopicPartition(self.topic, partition)
        low, high = self._asked(
            lambda: self._consumer.get_watermark_offsets(tp, timeout=METADATA_TIMEOUT_S, cached=False),
            "the offsets",
        )
        return int(low), int(high)

    def _assign(self, start: dict[int, int]) -> None:
        self._start = start
        self._consumer.assign([TopicPartition(self.topic, p, o) for p, o in start.items()])

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
        asked = [TopicPartition(self.topic, p, ms) for p in self.partitions]
        found = self._asked(
            lambda: self._consumer.offsets_for_times(asked, timeout=METADATA_TIMEOUT_S), "the offsets by time"
        )
        return {tp.partition: (tp.offset if tp.offset >= 0 else None) for tp in found}

    def position(self, partition: int) -> int:
        [tp] = self._consumer.position([TopicPartition(self.topic, partition)])
        return int(tp.offset) if tp.offset >= 0 else self._start[partition]

    def reached(self, ends: dict[int, int]) -> bool:
        tps = [TopicPartition(self.topic, p) for p in self._start]
        for tp in self._consumer.position(tps):
            position = tp.offset if tp.offset >= 0 else self._start[tp.partition]
            if position < ends[tp.partition]:
                return False
        return True

    def poll(self, timeout_ms: int) -> list[TailRecord]:
        records = []
        for message in consume_available(self._consumer, POLL_RECORDS, timeout_ms / 1000):
            error: Any = message.error()
            if error is not None:  # librdkafka retries on its own; shown once by the client-log digest
                CLIENT_LOGGER.warning("fetch from %s: %s", self.topic, described(error))
                continue
            records.append(TailRecord(message.partition(), message.offset(), message.key(), message.value()))
        return records

    def close(self) -> None:
        self._consumer.close()
