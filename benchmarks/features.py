"""Open and hashed features: ``run`` throughput against fixed features, and against river's pipeline
doing the same; the model's memory and its snapshot's size.

    python benchmarks/features.py [--events 100000] [--rounds 3] [--client confluent]

Three streams of the same length, each loaded once into a one-partition topic:

- fixed: 40 numeric features (``--features fixed``, the baseline);
- open: 30 numeric and 10 categorical features of 20 values each (``--features open``, 230 names);
- hashed: 40 numeric features and 10 ids drawn from 100,000 values each (50 active features per
  event, ``--features hashed`` with 2^20 buckets).

Each round runs ``run`` over the three (each run in a process of its own, started as the command
starts, with the allocator's huge pages of ``stream_neuron.launch``; ``--as-started`` without them;
at-least-once, per-event SGD, fresh output topics, the order alternating round by round), timed as
``pipeline_vs_bare.py`` times it; medians. The goal against fixed features is on these figures. In
process, without Kafka (the stream's first 20,000 events, each mode in a new process of its own; each
round one pass of the three below, alternated; the best of at least 3 rounds each):

- the processor: decode, encode, score, learn, outputs, every record's JSON bytes in 500-record polls;
- the encoder and the neuron alone, on the events' dicts already decoded (the poll's rows built by the
  processor's sinks, ``put_events``: a hashing takes the poll in one compiled call, the others event
  by event; then per event the output before the step, and the step), against river's
  pipeline doing the same on the same dicts (``TransformerUnion(numbers, OneHotEncoder)`` or
  ``FeatureHasher``, then ``LogisticRegression``; ``predict_proba_one`` then ``learn_one``): the
  goal against river is on these, the same job on both sides, as ``neuron_vs_peers.py`` compares.

``--where-the-gap-is`` adds runs of the hashed stream changed one way each (in the same rounds,
alternated with the others): without checkpoints during the run, and with 2^18 and 2^16 buckets.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any, cast

import numpy as np
from bench_topics import delete_at_exit, unique
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from stream_neuron.config import Settings, run_names
from stream_neuron.decode import Event
from stream_neuron.launch import TUNABLES_VARIABLE, command_environment
from stream_neuron.process_tuning import steady_process
from stream_neuron.runner import run

MODES = ("fixed", "open", "hashed")
GOAL_OF_FIXED, GOAL_OF_RIVER = 0.7, 20.0
# The hashed stream's run changed one way each: what of the gap to fixed features each part holds.
GAP_VARIANTS: dict[str, dict[str, Any]] = {
    "hashed, no checkpoint before the end": {
        "snapshot_every": 10**9,
        "commit_every": 10**9,
        "snapshot_interval_s": 3600.0,
        "commit_interval_ms": 3_600_000,
    },
    "hashed, 2^18 buckets": {"hash_bits": 18},
    "hashed, 2^16 buckets": {"hash_bits": 16},
}


def events_of(mode: str, n: int, seed: int = 1) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    numeric = 40 if mode != "open" else 30
    X = rng.normal(size=(n, numeric)).round(6)
    truth = rng.normal(size=numeric)
    y = (X @ truth + rng.normal(scale=0.5, size=n) > 0).astype(int)
    events = []
    for i in range(n):
        features: dict[str, Any] = {f"x{j}": float(v) for j, v in enumerate(X[i])}
        if mode == "open":
            features.update({f"c{j}": f"v{int(rng.integers(20))}" for j in range(10)})
        elif mode == "hashed":
            features.update({f"id{j}": f"u{int(rng.integers(100_000))}" for j in range(10)})
        events.append({"id": f"e{i}", "features": features, "label": int(y[i])})
    return events


def load(bootstrap: str, topic: str, events: list[dict[str, Any]]) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, 1, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=512 * 1024, acks="all")
    for event in events:
        producer.send(topic, key=event["id"].encode(), value=json.dumps(event).encode())
    producer.flush()
    producer.close()


def timed_run(
    bootstrap: str, topic: str, events: int, mode: str, client: str, changes: dict[str, Any] | None = None
) -> tuple[float, Settings]:
    name = unique("bench")
    names: dict[str, Any] = run_names(name) | {"input_topic": topic}
    settings = Settings(
        bootstrap_servers=bootstrap,
        **names,
        features=mode,
        learning_rate=(0.01,),
        max_events=events,
        kafka_client=client,
        **(changes or {}),
    )
    summary = run(settings)
    assert summary.first_input_at is not None
    return events / (summary.finished_at - summary.first_input_at), settings


def snapshot_bytes(bootstrap: str, settings: Settings) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    partition = TopicPartition(settings.model_topic, 0)
    consumer.assign([partition])
    consumer.seek_to_beginning(partition)
    end = consumer.end_offsets([partition])[partition]
    size = 0
    while consumer.position(partition) < end:
        for records in consumer.poll(1000).values():
            size = max([size, *(len(r.value or b"") for r in records)])
    consumer.close()
    return size


def processor_pass(mode: str, records: list[Any]) -> float:
    """The component's processor over the events' JSON records, in 500-record polls: events/s."""
    from stream_neuron.outputs import OutputLimits
    from stream_neuron.processor import Processor

    processor = Processor(
        Settings(features=mode, learning_rate=(0.01,)), 0.0, limits=OutputLimits(model=16 * 2**20)
    )
    started = time.perf_counter()
    for at in range(0, len(records), 500):
        processor.process(records[at : at + 500], 1.0)
    return len(records) / (time.perf_counter() - started)


def decoded_as_the_component_does(mode: str, events: list[dict[str, Any]]) -> list[Event]:
    """The events' dicts as ``run`` decodes them from their JSON (the same dicts go to both sides)."""
    from stream_neuron.decode import decode_event

    named = mode != "fixed"
    return [Event(**decode_event(json.dumps(e).encode(), 2**20, named=named)) for e in events]


def model_pass(mode: str, events: list[Event]) -> float:
    """The component's encoding and neuron alone on the decoded events, the job river's pipeline
    does below: each 500-event poll's features into rows (the processor's sinks' ``put_events``),
    then per event the output with the weights from before it and one SGD step: events/s."""
    from stream_neuron import LogisticNeuron
    from stream_neuron.feature_encoding import OpenVocabulary
    from stream_neuron.feature_hashing import FeatureHashing
    from stream_neuron.row_sink import DenseSink, SparseSink
    from stream_neuron.schema import FeatureSchema

    labels = np.array([e["label"] for e in events], dtype=np.float64)
    sink: DenseSink | SparseSink
    if mode == "fixed":
        sink = DenseSink(FeatureSchema(tuple(cast(dict[str, float], events[0]["features"]))))
    else:
        sink = SparseSink(OpenVocabulary() if mode == "open" else FeatureHashing(20), grow=True)
    width = 40 if mode == "fixed" else 0
    model = LogisticNeuron(width, 0.01, sparse=mode != "fixed")
    started = time.perf_counter()
    for at in range(0, len(events), 500):
        chunk = events[at : at + 500]
        sink.start(len(chunk), width, 500)
        sink.put_events(0, chunk)
        if isinstance(sink, SparseSink) and sink.n_features > model.n_features:
            model.grow(sink.n_features)
        model.score_then_learn(sink.rows(len(chunk)), labels[at : at + 500])
    return len(events) / (time.perf_counter() - started)


def river_pass(mode: str, events: list[Event]) -> float:
    from river import compose, linear_model, optim, preprocessing

    model = linear_model.LogisticRegression(optim.SGD(0.01), intercept_lr=0.01)
    if mode == "open":
        numbers = compose.FuncTransformer(lambda x: {k: v for k, v in x.items() if type(v) is float})
        categories = compose.Pipeline(
            compose.FuncTransformer(lambda x: {k: v for k, v in x.items() if type(v) is str}),
            preprocessing.OneHotEncoder(),
        )
        pipeline: Any = compose.Pipeline(compose.TransformerUnion(numbers, categories), model)
    elif mode == "hashed":
        pipeline = compose.Pipeline(preprocessing.FeatureHasher(2**20, seed=0), model)
    else:
        pipeline = model
    started = time.perf_counter()
    for event in events:
        pipeline.predict_proba_one(event["features"])
        pipeline.learn_one(event["features"], bool(event["label"]))
    return len(events) / (time.perf_counter() - started)


def measure(
    bootstrap: str, n: int, rounds: int, client: str, variants: dict[str, dict[str, Any]] | None = None
) -> dict[str, dict[str, float]]:
    """The three modes' figures, by mode; then each of ``variants`` (the hashed stream's run with
    those settings changed: its events/s only), by its name."""
    topics = {mode: unique(f"bench-feat-{mode}") for mode in MODES}
    for mode in MODES:  # each stream dropped once loaded: the runs are timed in a process without them
        load(bootstrap, topics[mode], events_of(mode, n))
    arms: dict[str, tuple[str, dict[str, Any]]] = {mode: (mode, {}) for mode in MODES}
    arms |= {name: ("hashed", changes) for name, changes in (variants or {}).items()}
    runs: dict[str, list[float]] = {arm: [] for arm in arms}
    sizes: dict[str, int] = {}
    for round_ in range(rounds):
        for arm in arms if round_ % 2 == 0 else tuple(reversed(arms)):
            mode, changes = arms[arm]
            rate, settings = run_in_a_fresh_process(bootstrap, topics[mode], n, mode, client, changes)
            runs[arm].append(rate)
            if arm not in sizes:  # the same stream and settings give the same snapshot every round
                sizes[arm] = snapshot_bytes(bootstrap, settings)
    results: dict[str, dict[str, float]] = {}
    for mode in MODES:
        results[mode] = in_a_fresh_process(mode, n, min(n, 20_000), rounds)
    for arm in arms:
        results.setdefault(arm, {}).update(
            events_per_s=statistics.median(runs[arm]), snapshot_bytes=float(sizes[arm])
        )
    return results


def as_the_command_starts() -> str:
    """The processes spawned from here on start under the environment ``stream-neuron`` restarts in
    (``stream_neuron.launch``: the allocator's huge pages), as the command's own runs do: what it is."""
    environ = command_environment(os.environ)
    if environ is None:
        return "as started (no huge pages on this machine)"
    os.environ.update(environ)
    return f"{TUNABLES_VARIABLE}={environ[TUNABLES_VARIABLE]}, as stream-neuron restarts itself"


def run_in_a_fresh_process(
    bootstrap: str, topic: str, events: int, mode: str, client: str, changes: dict[str, Any] | None = None
) -> tuple[float, Settings]:
    """:func:`timed_run` in a process of its own, as ``stream-neuron run`` is: a run after others in one
    process inherits their heap, and the allocator's state decides how many pages its checkpoints
    fault in (a hashed snapshot's arrays and text, megabytes each). In one process, the later hashed
    runs spent 15-25 ms of system time on each snapshot where the first spent 4-7."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(timed_run, bootstrap, topic, events, mode, client, changes).result()


def in_a_fresh_process(mode: str, length: int, n: int, rounds: int) -> dict[str, float]:
    """:func:`runs_in_process` on the first ``n`` events of the ``length``-event stream the runs read,
    in a process of its own. The encoder reads the decoded dicts' memory, and where the allocator
    puts them depends on what the process freed before: after the Kafka runs and another mode's
    passes, the same hashed pass ran at 0.6x its speed in a new process (river's pipeline, bound by
    its Python, hardly changed), so each mode starts from the same clean state."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(runs_in_process_of, mode, length, n, rounds).result()


def runs_in_process_of(mode: str, length: int, n: int, rounds: int) -> dict[str, float]:
    return runs_in_process(mode, events_of(mode, length)[:n], rounds)


def runs_in_process(mode: str, events: list[dict[str, Any]], rounds: int) -> dict[str, float]:
    """The processor, the encoder + neuron and river's pipeline on the same events, one pass of each
    per round, alternated so that a load spike hits all three; the best of at least 3 rounds each."""
    from stream_neuron.records import InputRecord

    records = [InputRecord("in", 0, i, None, json.dumps(e).encode(), []) for i, e in enumerate(events)]
    decoded = decoded_as_the_component_does(mode, events)
    steady_process()  # as run does: the collector calmed, one BLAS thread
    passes: dict[str, Callable[[], float]] = {
        "processor_events_per_s": lambda: processor_pass(mode, records),
        "model_events_per_s": lambda: model_pass(mode, decoded),
        "river_events_per_s": lambda: river_pass(mode, decoded),
    }
    best = dict.fromkeys(passes, 0.0)
    for _ in range(max(rounds, 3)):
        for key, one_pass in passes.items():
            best[key] = max(best[key], one_pass())
    return best


def format_results(results: dict[str, dict[str, float]], client: str) -> str:
    fixed = results["fixed"]["events_per_s"]
    in_fixed = results["fixed"]["processor_events_per_s"]
    lines = [
        f"| features | run ({client}) events/s | x fixed | processor events/s | x fixed | "
        "encoder + neuron events/s | river's pipeline events/s | x river | snapshot | goals |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    described = {
        "fixed": "fixed, 40 numeric",
        "open": "open, 30 numeric + 10 categorical",
        "hashed": "hashed, 50 active of 2^20",
    }
    for mode in MODES:
        figures = results[mode]
        rate, local, model = (
            figures[k] for k in ("events_per_s", "processor_events_per_s", "model_events_per_s")
        )
        river = figures["river_events_per_s"]
        goals = ""
        if mode != "fixed":
            met_fixed = "met" if rate / fixed >= GOAL_OF_FIXED else "MISSED"
            met_river = "met" if model / river >= GOAL_OF_RIVER else "MISSED"
            goals = (
                f"run >= {GOAL_OF_FIXED}x fixed {met_fixed}, "
                f"encoder + neuron >= {GOAL_OF_RIVER:g}x river {met_river}"
            )
        snapshot = figures["snapshot_bytes"] / 1024
        lines.append(
            f"| {described[mode]} | {rate:,.0f} | {rate / fixed:.2f}x | {local:,.0f} | "
            f"{local / in_fixed:.2f}x | {model:,.0f} | {river:,.0f} | {model / river:.1f}x | "
            f"{snapshot:,.0f} KiB | {goals} |"
        )
    variants = [arm for arm in results if arm not in MODES]
    if variants:
        hashed = results["hashed"]["events_per_s"]
        lines += [
            "",
            f"| the hashed run, changed | run ({client}) events/s | x fixed | x hashed | snapshot |",
            "|---|---|---|---|---|",
        ]
        for arm in variants:
            rate, snapshot = results[arm]["events_per_s"], results[arm]["snapshot_bytes"] / 1024
            lines.append(
                f"| {arm} | {rate:,.0f} | {rate / fixed:.2f}x | {rate / hashed:.2f}x | {snapshot:,.0f} KiB |"
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
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--client", default="confluent", choices=["confluent", "kafka-python"])
    parser.add_argument(
        "--where-the-gap-is", action="store_true", help="also run the hashed stream changed one way each"
    )
    parser.add_argument(
        "--as-started",
        action="store_true",
        help="spawn the runs in this process's environment, without the command's huge pages",
    )
    args = parser.parse_args()
    environment = "as started" if args.as_started else as_the_command_starts()
    delete_at_exit(args.bootstrap_servers)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.ERROR)
    variants = GAP_VARIANTS if args.where_the_gap_is else None
    results = measure(args.bootstrap_servers, args.events, args.rounds, args.client, variants)
    print(f"{args.events:,} events a stream, one partition, medians of {args.rounds} rounds; {environment}")
    print(format_results(results, args.client))


if __name__ == "__main__":
    main()
