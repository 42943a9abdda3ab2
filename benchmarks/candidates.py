"""Learning-rate candidates: ``run`` throughput with 1, 4 and 8 candidates on the same events, and the
memory of a candidate.

    python benchmarks/candidates.py [--events 200000] [--features 10] [--rounds 3] [--client confluent]

The events are loaded once into a one-partition topic; each round runs ``run --learning-rate`` with one
rate, then four, then eight (at-least-once, per-event SGD, fresh output topics), timed as in
``pipeline_vs_bare.py`` (first poll with records to the final checkpoint). The order of the three
alternates round by round; medians. The memory of a candidate is measured in-process (tracemalloc):
a processor racing nine rates less one racing one, over eight, after the same events.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tracemalloc

from bench_topics import delete_at_exit, unique
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from stream_neuron.config import Settings, run_names
from stream_neuron.processor import Processor
from stream_neuron.records import InputRecord
from stream_neuron.runner import run
from stream_neuron.tools.sources import synthetic

RATES = (0.05, 0.005, 0.5, 0.0005, 5.0, 0.01, 0.1, 1.0, 0.001)
COUNTS = (1, 4, 8)
GOAL_4 = 0.85


def load(bootstrap: str, topic: str, events: int, features: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, 1, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=512 * 1024, acks="all")
    for event in synthetic(events, features, 0.5, None, seed=1):
        producer.send(topic, key=event["id"].encode(), value=json.dumps(event).encode())
    producer.flush()
    producer.close()


def timed_run(bootstrap: str, topic: str, events: int, candidates: int, client: str) -> float:
    name = unique("bench")
    settings = Settings(
        bootstrap_servers=bootstrap,
        **(run_names(name) | {"input_topic": topic}),
        learning_rate=RATES[:candidates],
        max_events=events,
        kafka_client=client,
    )
    summary = run(settings)
    assert summary.first_input_at is not None
    return events / (summary.finished_at - summary.first_input_at)


def measure(bootstrap: str, events: int, features: int, rounds: int, client: str) -> dict[int, float]:
    topic = unique("bench-cand")
    load(bootstrap, topic, events, features)
    runs: dict[int, list[float]] = {k: [] for k in COUNTS}
    for round_ in range(rounds):
        order = COUNTS if round_ % 2 == 0 else tuple(reversed(COUNTS))
        for k in order:
            runs[k].append(timed_run(bootstrap, topic, events, k, client))
    return {k: statistics.median(values) for k, values in runs.items()}


def bytes_per_candidate(features: int, events: int = 2_000) -> float:
    """The memory a candidate adds to a processor (its model, learner, metrics, champion totals)."""
    records = [
        InputRecord("in", 0, i, None, json.dumps(event).encode(), [])
        for i, event in enumerate(synthetic(events, features, 0.5, None, seed=3))
    ]
    sizes = []
    for k in (1, 9):
        tracemalloc.start()
        processor = Processor(Settings(learning_rate=RATES[:k]), 0.0)
        processor.process(records, 1.0)
        sizes.append(tracemalloc.get_traced_memory()[0])
        tracemalloc.stop()
        del processor
    return (sizes[1] - sizes[0]) / 8


def format_results(rates: dict[int, float], per_candidate: float, client: str) -> str:
    one = rates[1]
    lines = [f"| candidates ({client}, at-least-once) | events/s | x one model | goal |", "|---|---|---|---|"]
    for k, rate in rates.items():
        goal = f">= {GOAL_4}x {'met' if rate / one >= GOAL_4 else 'MISSED'}" if k == 4 else ""
        lines.append(f"| {k} | {rate:,.0f} | {rate / one:.2f}x | {goal} |")
    lines.append(f"\nMemory per candidate (10 features, in the processor): {per_candidate / 1024:.1f} KiB.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--bootstrap-servers", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--client", default="confluent", choices=["confluent", "kafka-python"])
    args = parser.parse_args()
    delete_at_exit(args.bootstrap_servers)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.ERROR)
    rates = measure(args.bootstrap_servers, args.events, args.features, args.rounds, args.client)
    print(f"{args.events:,} events, {args.features} features, one partition, medians of {args.rounds} rounds")
    print(format_results(rates, bytes_per_candidate(args.features), args.client))


if __name__ == "__main__":
    main()
