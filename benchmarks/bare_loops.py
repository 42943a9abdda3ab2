"""The bare loop, one definition per Kafka client: every ratio to "the bare loop" is to one of these.

Each loop does the job ``run --mode sgd`` does and nothing else, in the cheapest correct way:

- the decode: ``orjson.loads`` of each value (the fastest correct JSON parser for Python), no
  contract checks (repeated keys, types, sizes, non-finite values all pass unseen);
- the maths: ours, per event, on Python floats (cheaper than numpy on 10 features): the logistic
  probability with the weights from before the event, then one SGD step of the log loss at the
  same rate as ``run`` (0.01, bias included);
- the output: one small JSON record per event, ``{"id", "probability", "prediction"}`` by
  ``orjson.dumps``, keyed as the input, ``acks=all``;
- no dead letters, metrics, snapshots, offsets or delivery checks: what ``run`` adds on top.

The consumer fetches as the component's does (500-record polls, the same fetch sizes and, on
librdkafka, the same short backoff of a full queue). A loop is
timed from its first poll that returns records to its last output acknowledged, as ``run`` is.

    python benchmarks/bare_loops.py serve kafka-python|confluent BOOTSTRAP SOURCE SINK

serves forever (``latency.py`` starts it as its own process; it says "running model" once ready).
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import orjson
from bench_topics import unique

USAGE = "python benchmarks/bare_loops.py serve kafka-python|confluent BOOTSTRAP SOURCE SINK"
KAFKA_PYTHON = "bare kafka-python + orjson loop"
CONFLUENT = "bare confluent-kafka + orjson loop"
LEARNING_RATE = 0.01  # run's default
FETCH_MAX_BYTES, PARTITION_FETCH_MAX_BYTES = 64 * 1024 * 1024, 16 * 1024 * 1024
FETCH_QUEUE_BACKOFF_MS = 10  # as the component's librdkafka consumers (kafka_io/limits.py says why)


class Neuron:
    """Logistic regression by per-event SGD on Python floats: ``run``'s maths, nothing more."""

    def __init__(self) -> None:
        self.weights: list[float] = []
        self.bias = 0.0

    def prediction(self, event: dict[str, Any]) -> bytes:
        x, weights = event["features"], self.weights
        if type(x) is dict:  # features by name, in the order sent (run pins that order too)
            x = x.values()
        if len(weights) != len(x):
            weights = self.weights = [0.0] * len(x)
        z = self.bias
        for w, v in zip(weights, x, strict=True):
            z += w * v
        p = 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
        step = LEARNING_RATE * (p - event["label"])
        self.weights = [w - step * v for w, v in zip(weights, x, strict=True)]
        self.bias -= step
        return orjson.dumps({"id": event["id"], "probability": p, "prediction": int(p >= 0.5)})


def fresh_topic(bootstrap: str, prefix: str) -> str:
    """A new one-partition topic for a loop's output."""
    from kafka.admin import KafkaAdminClient, NewTopic

    name = unique(prefix)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(name, 1, 1)])
    admin.close()
    return name


def kafka_python_loop(bootstrap: str, topic: str, sink: str, events: int | None = None) -> float:
    """Events per second through the kafka-python loop (``events=None``: serve forever)."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_poll_records=500,
        fetch_max_bytes=FETCH_MAX_BYTES,
        max_partition_fetch_bytes=PARTITION_FETCH_MAX_BYTES,
    )
    partition = TopicPartition(topic, 0)
    consumer.assign([partition])
    consumer.seek_to_beginning(partition)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, batch_size=256 * 1024)
    neuron, loads, send = Neuron(), orjson.loads, producer.send
    seen, started = 0, None
    if events is None:
        _ready()
    while events is None or seen < events:
        for batch in consumer.poll(timeout_ms=200).values():
            started = time.perf_counter() if started is None else started
            for record in batch:
                send(sink, key=record.key, value=neuron.prediction(loads(record.value)))
            seen += len(batch)
    producer.flush()
    assert started is not None
    elapsed = time.perf_counter() - started
    producer.close()
    consumer.close()
    return seen / elapsed


def confluent_loop(bootstrap: str, topic: str, sink: str, events: int | None = None) -> float:
    """Events per second through the confluent-kafka loop (``events=None``: serve forever)."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("bare"),
            "enable.auto.commit": False,
            "fetch.max.bytes": FETCH_MAX_BYTES,
            "max.partition.fetch.bytes": PARTITION_FETCH_MAX_BYTES,
            "fetch.queue.backoff.ms": FETCH_QUEUE_BACKOFF_MS,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    neuron, loads, produce = Neuron(), orjson.loads, producer.produce
    seen, started = 0, None
    if events is None:
        _ready()
    while events is None or seen < events:
        # What is there at once, else wait for one: a batch never waits to fill (latency.py times it)
        batch = consumer.consume(500, 0) or consumer.consume(1, 0.2)
        if batch and started is None:
            started = time.perf_counter()
        for message in batch:
            value = neuron.prediction(loads(message.value()))
            while True:
                try:
                    produce(sink, key=message.key(), value=value)
                    break
                except BufferError:  # librdkafka's queue is full: let it send, then try again
                    producer.poll(0.05)
        seen += len(batch)
        producer.poll(0)
    producer.flush()
    assert started is not None
    elapsed = time.perf_counter() - started
    consumer.close()
    return seen / elapsed


LOOPS = {"kafka-python": kafka_python_loop, "confluent": confluent_loop}


def measure(client: str, bootstrap: str, topic: str, events: int) -> float:
    """Events per second of the bare loop on ``client`` over ``events`` of ``topic``, into a new topic."""
    return LOOPS[client](bootstrap, topic, fresh_topic(bootstrap, f"bare-{client}"), events)


def _ready() -> None:
    print("running model", file=sys.stderr, flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 6 or sys.argv[1] != "serve" or sys.argv[2] not in LOOPS:
        raise SystemExit(f"usage: {USAGE}")
    LOOPS[sys.argv[2]](*sys.argv[3:6])
