"""The whole pipeline against a bare kafka-python consume-decode-produce loop, same broker, same events.

Both are timed from their first poll that returns records to their last output acknowledged (for the
component: its final checkpoint), so client start-up is outside the figure on both sides.

    python benchmarks/pipeline_vs_bare.py [--events 100000] [--features 10] [--rounds 2]

Loads the events once into a one-partition topic, then alternates: the bare loop (poll, json.loads,
produce one small record per event, flush), ``run --mode sgd``, ``run --mode minibatch`` (and with
``--guarantee exactly-once`` where given). Each round reads the whole topic from the start into fresh
output topics. Prints events per second (best round) and each pipeline's ratio to the bare loop.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
import uuid
from collections.abc import Callable

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from stream_neuron.config import Settings, run_names
from stream_neuron.runner import run
from stream_neuron.tools.sources import synthetic


def load(bootstrap: str, topic: str, events: int, features: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, 1, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=512 * 1024, acks="all")
    for event in synthetic(events, features, 0.5, None, seed=1):
        producer.send(topic, key=event["id"].encode(), value=json.dumps(event).encode())
    producer.flush()
    producer.close()


def bare_loop(bootstrap: str, topic: str, events: int) -> float:
    out = f"bare-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(out, 1, 1)])
    admin.close()
    # The same fetch sizes as the component's consumer, so the limit is the stack's, not a setting's.
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_poll_records=500,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, batch_size=256 * 1024)
    seen = 0
    started = None
    while seen < events:
        for batch in consumer.poll(timeout_ms=500).values():
            started = time.perf_counter() if started is None else started
            for record in batch:
                event = json.loads(record.value)
                producer.send(out, key=record.key, value=json.dumps({"id": event["id"], "p": 0.5}).encode())
                seen += 1
    producer.flush()
    assert started is not None
    elapsed = time.perf_counter() - started
    producer.close()
    consumer.close()
    return events / elapsed


def pipeline(
    bootstrap: str, topic: str, events: int, mode: str, guarantee: str, client: str = "kafka-python"
) -> float:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        bootstrap_servers=bootstrap,
        **(run_names(name) | {"input_topic": topic}),
        mode=mode,
        guarantee=guarantee,
        max_events=events,
        kafka_client=client,
    )
    summary = run(settings)
    assert summary.first_input_at is not None
    return events / (summary.finished_at - summary.first_input_at)


BARE = "bare kafka-python loop"


def measure(
    bootstrap: str, events: int, features: int, rounds: int, guarantees: list[str]
) -> dict[str, float]:
    """Best events per second of each contender over ``rounds`` alternated rounds on the same events."""
    topic = f"bench-in-{uuid.uuid4().hex[:8]}"
    load(bootstrap, topic, events, features)
    runs: dict[str, Callable[[], float]] = {BARE: lambda: bare_loop(bootstrap, topic, events)}
    for guarantee in guarantees:
        for mode in ("sgd", "minibatch"):
            runs[f"run --mode {mode} ({guarantee})"] = lambda m=mode, g=guarantee: pipeline(
                bootstrap, topic, events, m, g
            )
    best = dict.fromkeys(runs, 0.0)
    for _ in range(rounds):
        for name, run_once in runs.items():
            best[name] = max(best[name], run_once())
    return best


GOALS = {
    "run --mode sgd (at-least-once)": 0.8,
    "run --mode sgd (exactly-once)": 0.6,
}


def format_results(best: dict[str, float]) -> str:
    bare = best[BARE]
    lines = ["| pipeline | events/s | x bare loop | goal |", "|---|---|---|---|"]
    for name, rate in best.items():
        goal = GOALS.get(name)
        verdict = "" if goal is None else f">= {goal}x {'met' if rate / bare >= goal else 'MISSED'}"
        if name.startswith("run --mode minibatch"):
            sgd = best.get(name.replace("minibatch", "sgd"), 0.0)
            verdict = f">= sgd ({sgd:,.0f}/s) {'met' if rate >= sgd else 'MISSED'}"
        lines.append(f"| {name} | {rate:,.0f} | {rate / bare:.2f}x | {verdict} |")
    for mode in ("sgd", "minibatch"):
        alos, eos = (best.get(f"run --mode {mode} ({g})") for g in ("at-least-once", "exactly-once"))
        if alos and eos:
            verdict = "met" if eos / alos >= 0.7 else "MISSED"
            lines.append(
                f"| exactly-once / at-least-once, --mode {mode} | | {eos / alos:.2f}x | >= 0.7x {verdict} |"
            )
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
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--guarantees", nargs="+", default=["at-least-once", "exactly-once"])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.ERROR)
    best = measure(args.bootstrap_servers, args.events, args.features, args.rounds, args.guarantees)
    rounds = f"best of {args.rounds} alternated rounds"
    print(f"{args.events:,} events, {args.features} features, one partition, {rounds}")
    print(format_results(best))


if __name__ == "__main__":
    main()
