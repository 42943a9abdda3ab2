"""The whole pipeline on kafka-python against the bare kafka-python loop (``bare_loops.py``), same
broker, same events.

Both are timed from their first poll that returns records to their last output acknowledged (for the
component: its final checkpoint), so client start-up is outside the figure on both sides.

    python benchmarks/pipeline_vs_bare.py [--events 100000] [--features 10] [--rounds 2]

Loads the events once into a one-partition topic, then alternates: the bare loop, ``run --mode sgd``,
``run --mode minibatch`` (and with ``--guarantee exactly-once`` where given). Each round reads the
whole topic from the start into fresh output topics. Prints events per second (the median of the
rounds) and each pipeline's ratio to the bare loop.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
from collections.abc import Callable

import bare_loops
from bench_topics import delete_at_exit, unique
from kafka import KafkaProducer
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


def pipeline(
    bootstrap: str, topic: str, events: int, mode: str, guarantee: str, client: str = "kafka-python"
) -> float:
    name = unique("bench")
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


BARE = bare_loops.KAFKA_PYTHON


def measure(
    bootstrap: str, events: int, features: int, rounds: int, guarantees: list[str]
) -> dict[str, float]:
    """Each contender's median events per second over ``rounds`` alternated rounds on the same events."""
    topic = unique("bench-in")
    load(bootstrap, topic, events, features)
    runs: dict[str, Callable[[], float]] = {
        BARE: lambda: bare_loops.measure("kafka-python", bootstrap, topic, events)
    }
    for guarantee in guarantees:
        for mode in ("sgd", "minibatch"):
            runs[f"run --mode {mode} ({guarantee})"] = lambda m=mode, g=guarantee: pipeline(
                bootstrap, topic, events, m, g
            )
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run_once in runs.items():
            rates[name].append(run_once())
    return {name: statistics.median(values) for name, values in rates.items()}


GOALS = {
    "run --mode sgd (at-least-once)": 0.8,
    "run --mode sgd (exactly-once)": 0.6,
}


def format_results(medians: dict[str, float]) -> str:
    best = medians
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
    delete_at_exit(args.bootstrap_servers)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.ERROR)
    best = measure(args.bootstrap_servers, args.events, args.features, args.rounds, args.guarantees)
    rounds = f"medians of {args.rounds} alternated rounds"
    print(f"{args.events:,} events, {args.features} features, one partition, {rounds}")
    print(format_results(best))


if __name__ == "__main__":
    main()
