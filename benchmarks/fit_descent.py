"""``stream-neuron fit``'s descent: events per second per epoch on 1,000,000 events x 10 features.

    python benchmarks/fit_descent.py [--events 1000000] [--rounds 3] [--bootstrap-servers HOST:PORT]

In memory (the set already loaded): batch gradient descent as ``fit`` runs it (one step per epoch,
then the epoch's cost over the whole set for the progress line and the metrics), the same without the
cost pass, a plain numpy loop of the update rule (the floor: two matrix-vector products per epoch),
and mini-batch descent with batches of 32 and 8 (one step per batch, a seeded reshuffle per epoch).
Alternated round by round; medians.

From a topic: the time ``fit`` takes to read and decode the whole history (``fit.load``: one
consumer, blocks of 65,536 rows), measured once, since it happens once per fit whatever the epochs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
from bench_topics import delete_at_exit, unique
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from stream_neuron import LogisticNeuron
from stream_neuron.command_config import FitSettings
from stream_neuron.fit import load
from stream_neuron.neuron.descent import descend

FEATURES = 10


def dataset(events: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(events, FEATURES))
    y = (X @ rng.normal(size=FEATURES) + rng.normal(size=events) > 0).astype(float)
    return X, y


def plain_update_rule(X: np.ndarray, y: np.ndarray, epochs: int, rate: float) -> None:
    n = len(y)
    w, b = np.zeros(X.shape[1]), 0.0
    for _ in range(epochs):
        g = 1.0 / (1.0 + np.exp(-(X @ w + b))) - y
        w -= rate * (X.T @ g) / n
        b -= rate * g.mean()


def steps_only(X: np.ndarray, y: np.ndarray, epochs: int, rate: float) -> None:
    model = LogisticNeuron(X.shape[1], learning_rate=rate)
    for _ in range(epochs):
        model.learn_batch(X, y)


def per_epoch(events: int, epochs: int, work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return events * epochs / (time.perf_counter() - started)


def measure_memory(events: int, rounds: int) -> dict[str, float]:
    X, y = dataset(events)
    ways: dict[str, tuple[int, Callable[[], object]]] = {
        "batch GD as fit runs it (step + cost each epoch)": (
            5, lambda: descend(LogisticNeuron(FEATURES, learning_rate=0.5), X, y, 5)
        ),
        "batch GD, steps only (learn_batch)": (5, lambda: steps_only(X, y, 5, 0.5)),
        "plain numpy update rule (the floor)": (5, lambda: plain_update_rule(X, y, 5, 0.5)),
        "mini-batch GD, batches of 32": (
            1, lambda: descend(LogisticNeuron(FEATURES, learning_rate=0.5), X, y, 1, batch_size=32)
        ),
        "mini-batch GD, batches of 8": (
            1, lambda: descend(LogisticNeuron(FEATURES, learning_rate=0.5), X, y, 1, batch_size=8)
        ),
    }  # fmt: skip
    runs: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(rounds):
        for name, (epochs, work) in ways.items():
            runs[name].append(per_epoch(events, epochs, work))
    return {name: statistics.median(values) for name, values in runs.items()}


def measure_load(bootstrap: str, events: int) -> tuple[float, int]:
    """Seconds ``fit.load`` takes to read ``events`` JSON events from a topic, and the rows it got."""
    topic = unique("bench-fit")
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, 1, 1)])
    admin.close()
    X, y = dataset(events, seed=1)
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, batch_size=1 << 20, compression_type="lz4"
    )
    names = [f"x{i}" for i in range(FEATURES)]
    for i in range(events):
        event = {"id": str(i), "features": dict(zip(names, X[i].tolist(), strict=True)), "label": int(y[i])}
        producer.send(topic, json.dumps(event).encode())
    producer.flush()
    producer.close()
    settings = FitSettings(bootstrap_servers=bootstrap, input_topic=topic, model_name=topic)
    started = time.perf_counter()
    history = load(settings)
    seconds = time.perf_counter() - started
    return seconds, len(history.y)


def format_results(memory: dict[str, float], events: int, loaded: tuple[float, int] | None) -> str:
    lines = [
        f"| {events:,} events x {FEATURES} features, in memory | events/s per epoch | epochs/s |",
        "|---|---|---|",
    ]
    for name, rate in memory.items():
        lines.append(f"| {name} | {rate:,.0f} | {rate / events:.2f} |")
    if loaded is not None:
        seconds, rows = loaded
        lines += [
            "",
            f"Reading the history from a topic (`fit.load`, once per fit): {rows:,} events in "
            f"{seconds:.1f} s ({rows / seconds:,.0f} events/s).",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--bootstrap-servers", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    parser.add_argument("--no-topic", action="store_true", help="skip reading the history from a topic")
    args = parser.parse_args()
    delete_at_exit(args.bootstrap_servers)
    memory = measure_memory(args.events, args.rounds)
    loaded = None if args.no_topic else measure_load(args.bootstrap_servers, args.events)
    print(format_results(memory, args.events, loaded))


if __name__ == "__main__":
    main()
