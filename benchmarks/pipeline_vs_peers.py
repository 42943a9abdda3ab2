"""The pipeline against what a user would pick instead, same broker, same events, one partition:

- a quix-streams app doing the same job: its JSON deserialiser, the same neuron maths per message
  (score with the weights from before the event, then one SGD step), one JSON prediction per event
  to an output topic, at-least-once;
- a bare confluent-kafka loop with orjson: consume, decode, produce one small record (the practical
  limit of one Python process on librdkafka);
- the bare kafka-python loop of ``pipeline_vs_bare.py`` (the same, on kafka-python);

and ``run`` itself on each Kafka client (``--kafka-client kafka-python|confluent``).

    python benchmarks/pipeline_vs_peers.py [--events 100000] [--features 10] [--rounds 3]

Each contender reads the whole topic from the start into a fresh output topic, timed from its first
record to its last output acknowledged (the component: its final checkpoint). Alternated round by
round; medians. Needs ``pip install -e '.[bench]'`` (confluent-kafka, orjson, quixstreams).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import statistics
import time
import uuid
from collections.abc import Callable

import numpy as np
from kafka.admin import KafkaAdminClient, NewTopic
from pipeline_vs_bare import bare_loop, load, pipeline

RUN = "stream-neuron run --mode sgd (at-least-once, kafka-python)"
RUN_RD = "stream-neuron run --mode sgd (at-least-once, confluent)"
RUN_RD_EOS = "stream-neuron run --mode sgd (exactly-once, confluent)"
QUIX = "quix-streams app (same maths)"
CONFLUENT = "bare confluent-kafka + orjson loop"
KAFKA_PYTHON = "bare kafka-python loop"


def _output_topic(bootstrap: str, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(name, 1, 1)])
    admin.close()
    return name


def confluent_loop(bootstrap: str, topic: str, events: int) -> float:
    import orjson
    from confluent_kafka import Consumer, Producer, TopicPartition

    out = _output_topic(bootstrap, "bare-rd")
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    seen, started = 0, None
    loads, dumps, produce = orjson.loads, orjson.dumps, producer.produce
    while seen < events:
        batch = consumer.consume(500, timeout=0.5)
        if batch and started is None:
            started = time.perf_counter()
        for message in batch:
            event = loads(message.value())
            while True:
                try:
                    produce(out, key=message.key(), value=dumps({"id": event["id"], "p": 0.5}))
                    break
                except BufferError:
                    producer.poll(0.05)
            seen += 1
        producer.poll(0)
    producer.flush()
    assert started is not None
    elapsed = time.perf_counter() - started
    consumer.close()
    return events / elapsed


def quix_app(bootstrap: str, topic: str, events: int, features: int, rate: float = 0.05) -> float:
    from quixstreams import Application

    out = _output_topic(bootstrap, "quix")
    app = Application(
        broker_address=bootstrap,
        consumer_group=f"bench-quix-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        processing_guarantee="at-least-once",
        use_changelog_topics=False,
        loglevel=None,
    )
    source = app.topic(topic, value_deserializer="json")
    sink = app.topic(out, value_serializer="json")
    weights, bias = np.zeros(features), 0.0
    state = {"seen": 0, "started": 0.0}

    def score_then_learn(event: dict[str, object]) -> dict[str, object]:
        nonlocal weights, bias
        if state["seen"] == 0:
            state["started"] = time.perf_counter()
        x = np.fromiter(event["features"].values(), float, features)  # type: ignore[union-attr]
        p = 1.0 / (1.0 + math.exp(-(float(x @ weights) + bias)))
        g = p - float(event["label"])  # type: ignore[arg-type]
        weights = weights - rate * g * x
        bias -= rate * g
        state["seen"] += 1
        if state["seen"] == events:
            app.stop()
        return {"id": event["id"], "probability": p, "prediction": int(p > 0.5)}

    sdf = app.dataframe(source)
    sdf = sdf.apply(score_then_learn)
    sdf.to_topic(sink)
    app.run()
    return events / (time.perf_counter() - state["started"])


def measure(bootstrap: str, events: int, features: int, rounds: int) -> dict[str, float]:
    topic = f"bench-peers-{uuid.uuid4().hex[:8]}"
    load(bootstrap, topic, events, features)
    contenders: dict[str, Callable[[], float]] = {
        RUN: lambda: pipeline(bootstrap, topic, events, "sgd", "at-least-once"),
        RUN_RD: lambda: pipeline(bootstrap, topic, events, "sgd", "at-least-once", "confluent"),
        RUN_RD_EOS: lambda: pipeline(bootstrap, topic, events, "sgd", "exactly-once", "confluent"),
        QUIX: lambda: quix_app(bootstrap, topic, events, features),
        CONFLUENT: lambda: confluent_loop(bootstrap, topic, events),
        KAFKA_PYTHON: lambda: bare_loop(bootstrap, topic, events),
    }
    runs: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, once in contenders.items():
            runs[name].append(once())
    return {name: statistics.median(rates) for name, rates in runs.items()}


GOALS = {QUIX: 1.5, CONFLUENT: 0.6}  # the confluent run against each (issue 16)


def format_results(medians: dict[str, float]) -> str:
    ours, rd = medians[RUN], medians[RUN_RD]
    lines = [
        "| contender | events/s | run (kafka-python) x it | run (confluent) x it | goal |",
        "|---|---|---|---|---|",
    ]
    for name, rate in medians.items():
        goal = GOALS.get(name)
        verdict = "" if goal is None else f"confluent >= {goal}x {'met' if rd / rate >= goal else 'MISSED'}"
        lines.append(f"| {name} | {rate:,.0f} | {ours / rate:.2f}x | {rd / rate:.2f}x | {verdict} |")
    eos = medians[RUN_RD_EOS] / rd
    lines.append(f"| exactly-once / at-least-once (confluent) | | | {eos:.2f}x | >= 0.7x "
                 f"{'met' if eos >= 0.7 else 'MISSED'} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--bootstrap-servers", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.ERROR)
    medians = measure(args.bootstrap_servers, args.events, args.features, args.rounds)
    print(f"{args.events:,} events, {args.features} features, one partition, medians of {args.rounds} rounds")
    print(format_results(medians))


if __name__ == "__main__":
    main()
