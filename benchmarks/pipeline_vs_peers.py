"""The pipeline against what a user would pick instead, same broker, same events, one partition:

- a quix-streams app doing the same job: its JSON deserialiser, the same neuron maths per message
  (score with the weights from before the event, then one SGD step), one JSON prediction per event
  to an output topic, at-least-once;
- the bare loop on each client (``bare_loops.py``: orjson, the same maths, one small prediction
  record an event, nothing else): the practical limit of one Python process on that client;

and ``run`` itself on each Kafka client (``--kafka-client kafka-python|confluent``).

    python benchmarks/pipeline_vs_peers.py [--events 300000] [--features 10] [--rounds 3]

Each contender reads the whole topic from the start into a fresh output topic, timed from its first
record to its last output acknowledged (the component: its final checkpoint). Alternated round by
round; medians. Needs ``pip install -e '.[bench]'`` (orjson, quixstreams).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import statistics
import time
from collections.abc import Callable

import bare_loops
import numpy as np
from bench_topics import delete_at_exit, unique
from pipeline_vs_bare import load, pipeline

RUN = "stream-neuron run --mode sgd (at-least-once, kafka-python)"
RUN_RD = "stream-neuron run --mode sgd (at-least-once, confluent)"
RUN_RD_EOS = "stream-neuron run --mode sgd (exactly-once, confluent)"
QUIX = "quix-streams app (same maths)"
CONFLUENT, KAFKA_PYTHON = bare_loops.CONFLUENT, bare_loops.KAFKA_PYTHON


def quix_app(bootstrap: str, topic: str, events: int, features: int, rate: float = 0.05) -> float:
    from quixstreams import Application

    out = bare_loops.fresh_topic(bootstrap, "quix")
    app = Application(
        broker_address=bootstrap,
        consumer_group=unique("bench-quix"),
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
    topic = unique("bench-peers")
    load(bootstrap, topic, events, features)
    contenders: dict[str, Callable[[], float]] = {
        RUN: lambda: pipeline(bootstrap, topic, events, "sgd", "at-least-once"),
        RUN_RD: lambda: pipeline(bootstrap, topic, events, "sgd", "at-least-once", "confluent"),
        RUN_RD_EOS: lambda: pipeline(bootstrap, topic, events, "sgd", "exactly-once", "confluent"),
        QUIX: lambda: quix_app(bootstrap, topic, events, features),
        CONFLUENT: lambda: bare_loops.measure("confluent", bootstrap, topic, events),
        KAFKA_PYTHON: lambda: bare_loops.measure("kafka-python", bootstrap, topic, events),
    }
    runs: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, once in contenders.items():
            runs[name].append(once())
    return {name: statistics.median(rates) for name, rates in runs.items()}


GOALS = {QUIX: 2.5, CONFLUENT: 0.5}  # the confluent run against each (issue 26)
EXACTLY_ONCE_GOAL = 0.8  # of at-least-once, confluent


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
    lines.append(f"| exactly-once / at-least-once (confluent) | | | {eos:.2f}x | >= {EXACTLY_ONCE_GOAL}x "
                 f"{'met' if eos >= EXACTLY_ONCE_GOAL else 'MISSED'} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--bootstrap-servers", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    delete_at_exit(args.bootstrap_servers)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.ERROR)
    medians = measure(args.bootstrap_servers, args.events, args.features, args.rounds)
    print(f"{args.events:,} events, {args.features} features, one partition, medians of {args.rounds} rounds")
    print(format_results(medians))


if __name__ == "__main__":
    main()
