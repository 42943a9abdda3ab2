"""The same input gives the same model: the records of a multi-partition topic are learned in record-time
order, (timestamp, partition, offset), whatever order the client fetches them in. Three runs over the
same topic give bit-identical weights and predictions, equal to a replay of the records sorted that way
(the numpy reference and river), with kills in between as well, per event and in mini-batches, and with
answers on a labels topic merged by the same rule."""

from __future__ import annotations

import json
import random
import signal
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from kafka import KafkaProducer

from stream_neuron import LogisticNeuron
from stream_neuron.config import Settings
from stream_neuron.processor import Processor
from stream_neuron.records import InputRecord
from tests.component import Topics, json_records, last_snapshot, run_component, start_component, weights
from tests.datasets import synthetic
from tests.kafka_helpers import client, create_topic, unique_name

pytestmark = pytest.mark.kafka

N, FEATURES, PARTITIONS = 30_000, 4, 3
# Every record is in the topics before a run starts, so the order is exact while each partition's
# next records come within the wait for them (record_order.py). The default wait (100 ms) is for
# live traffic; a loaded machine can take longer to answer a fetch (a CI run once took three
# different orders), and a wait ends when the records come, so these runs wait up to 10 s.
WAIT = ("--max-partition-wait-ms", "10000")
# An hour ago: record timestamps within the topic's retention (older ones would be deleted by it).
BASE_MS = (int(time.time()) - 3600) * 1000


def stamped(n: int, seed: int) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray]:
    X, y = synthetic(n, FEATURES, seed=seed)
    events = [
        {"id": f"e{i}", "features": row.tolist(), "label": int(label)}
        for i, (row, label) in enumerate(zip(X, y, strict=True))
    ]
    return events, X, y


def placement(i: int) -> tuple[int, int]:
    """Event i's partition and timestamp: round-robin over the partitions, two events a millisecond
    (equal timestamps on two partitions: the partition number decides)."""
    return i % PARTITIONS, BASE_MS + i // 2


def produce_stamped(
    bootstrap: str, topic: str, values: list[dict[str, Any]], at: Iterator[tuple[int, int]]
) -> None:
    producer = KafkaProducer(**client(bootstrap), acks="all", linger_ms=5)
    for value, (partition, ts) in zip(values, at, strict=False):
        producer.send(topic, value=json.dumps(value).encode(), partition=partition, timestamp_ms=ts)
    producer.flush()
    producer.close()


def record_time_order(bootstrap: str, topics: list[str]) -> list[InputRecord]:
    """Every record of the topics as the contract orders them: (timestamp, topic's place, partition,
    offset); the timestamps each partition's records carry rise, so this is also the merge's order."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**client(bootstrap), enable_auto_commit=False)
    records: list[InputRecord] = []
    try:
        tps = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or [])]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for batch in consumer.poll(timeout_ms=500).values():
                records += [
                    InputRecord(r.topic, r.partition, r.offset, r.key, r.value, [], r.timestamp)
                    for r in batch
                ]
    finally:
        consumer.close(autocommit=False)
    return sorted(records, key=lambda r: (r.timestamp_ms, topics.index(r.topic), r.partition, r.offset))


def fresh(base: Topics) -> Topics:
    """Another run over the same input: its own outputs, group and model."""
    name = unique_name("sn-again")
    return Topics(
        base.input, f"{name}-pred", f"{name}-metrics", f"{name}-dlq", f"{name}-model", f"{name}-group", name
    )


def by_id(bootstrap: str, topics: Topics) -> dict[str, tuple[float, int]]:
    return {
        p["id"]: (p["probability"], p["model_version"]) for p in json_records(bootstrap, topics.predictions)
    }


@pytest.fixture(scope="module")
def stamped_topic(kafka_bootstrap: str) -> tuple[Topics, np.ndarray, np.ndarray, list[str]]:
    events, X, y = stamped(N, seed=71)
    topics = Topics.create(kafka_bootstrap, partitions=PARTITIONS)
    produce_stamped(kafka_bootstrap, topics.input, events, (placement(i) for i in range(N)))
    # Record-time order: (timestamp, partition, offset); partition i % 3 gets event i at offset i // 3.
    order = sorted(range(N), key=lambda i: (*reversed(placement(i)), i // PARTITIONS))
    return topics, X[order], y[order], [f"e{i}" for i in order]


@pytest.mark.parametrize("mode", ["sgd", "minibatch"])
def test_three_runs_learn_bit_identical_models_equal_to_the_record_time_replay(
    kafka_bootstrap: str, stamped_topic: tuple[Topics, np.ndarray, np.ndarray, list[str]], mode: str
) -> None:
    base, X, y, ids = stamped_topic
    flags = ["--mode", mode, "--batch-size", "16", "--linger-ms", "60000", "--idle-timeout-s", "3", *WAIT]
    runs = [fresh(base) for _ in range(3)]
    for topics in runs:
        done = run_component(kafka_bootstrap, topics, *flags)
        # A healthy run logs no client warnings (kafka-python's "blocking the event loop" are off).
        assert "stream_neuron.kafka:" not in done.stderr, done.stderr[-3000:]
    snapshots = [last_snapshot(kafka_bootstrap, topics) for topics in runs]
    for snapshot in snapshots[1:]:
        np.testing.assert_array_equal(weights(snapshot), weights(snapshots[0]))
        assert snapshot["bias"] == snapshots[0]["bias"]
    predictions = [by_id(kafka_bootstrap, topics) for topics in runs]
    assert predictions[1] == predictions[0] == predictions[2]
    reference = LogisticNeuron(FEATURES, learning_rate=0.05)
    if mode == "sgd":
        expected = reference.score_then_learn(X, y)
    else:
        expected = np.concatenate(
            [reference.score_then_learn_batch(X[s : s + 16], y[s : s + 16]) for s in range(0, N, 16)]
        )
    np.testing.assert_allclose(weights(snapshots[0]), reference.weights, rtol=0, atol=1e-12)
    np.testing.assert_allclose([predictions[0][i][0] for i in ids], expected, rtol=0, atol=1e-12)
    if mode == "sgd":  # river, fed in the same order
        from river import linear_model, optim

        river = linear_model.LogisticRegression(optim.SGD(0.05), intercept_lr=0.05)
        for row, label in zip(X, y, strict=True):
            river.learn_one(dict(enumerate(row.tolist())), bool(label))
        np.testing.assert_allclose(
            weights(snapshots[0]), [river.weights[i] for i in range(FEATURES)], atol=1e-9
        )


@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
def test_kills_in_between_learn_the_same_model_bit_for_bit(
    kafka_bootstrap: str,
    stamped_topic: tuple[Topics, np.ndarray, np.ndarray, list[str]],
    guarantee: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Killed at a crash point three times, then finished: the same weights, bit for bit, as an
    uninterrupted run; exactly-once's rollbacks replay in the order of the first attempt."""
    base = stamped_topic[0]
    flags = ["--guarantee", guarantee, "--poll-max-records", "200", "--commit-interval-ms", "50", *WAIT]
    whole = fresh(base)
    run_component(kafka_bootstrap, whole, *flags, "--idle-timeout-s", "3")
    killed = fresh(base)
    rng = random.Random(72)
    for _ in range(3):
        monkeypatch.setenv("STREAM_NEURON_TEST_CRASH_AT", "after-publish")
        monkeypatch.setenv("STREAM_NEURON_TEST_CRASH_ON", str(rng.randint(10, 40)))
        process = start_component(kafka_bootstrap, killed, *flags)
        assert process.finish(240)[0] == -signal.SIGKILL, "the run ended before its crash point"
    monkeypatch.delenv("STREAM_NEURON_TEST_CRASH_AT")
    monkeypatch.delenv("STREAM_NEURON_TEST_CRASH_ON")
    run_component(kafka_bootstrap, killed, *flags, "--idle-timeout-s", "3")
    np.testing.assert_array_equal(
        weights(last_snapshot(kafka_bootstrap, killed)), weights(last_snapshot(kafka_bootstrap, whole))
    )
    assert last_snapshot(kafka_bootstrap, killed)["version"] == N


def test_answers_on_a_labels_topic_are_merged_by_the_same_rule(kafka_bootstrap: str) -> None:
    """Questions on three partitions, their answers on a labels topic a little later in record time:
    three runs learn bit-identical models, equal to the pure processor fed every record in record-time
    order."""
    n = 6_000
    events, _, _ = stamped(n, seed=73)
    topics = Topics.create(kafka_bootstrap, partitions=PARTITIONS)
    labels = create_topic(kafka_bootstrap, unique_name("sn-labels"), partitions=2)
    questions = [{k: v for k, v in e.items() if k != "label"} for e in events]
    answers = [{"id": e["id"], "label": e["label"]} for e in events]
    produce_stamped(kafka_bootstrap, topics.input, questions, (placement(i) for i in range(n)))
    produce_stamped(kafka_bootstrap, labels, answers, ((i % 2, BASE_MS + i // 2 + 40) for i in range(n)))
    flags = ["--label-window", "10000", "--labels-topic", labels, "--idle-timeout-s", "3", *WAIT]
    runs = [fresh(topics) for _ in range(3)]
    for run in runs:
        run_component(kafka_bootstrap, run, *flags)
    snapshots = [last_snapshot(kafka_bootstrap, run) for run in runs]
    for snapshot in snapshots[1:]:
        np.testing.assert_array_equal(weights(snapshot), weights(snapshots[0]))
    ordered = record_time_order(kafka_bootstrap, [topics.input, labels])
    replay = Processor(Settings(label_window=10_000, labels_topic=labels, input_topic=topics.input), 0.0)
    replay.process(ordered, 1.0)
    assert replay.model is not None
    np.testing.assert_allclose(weights(snapshots[0]), replay.model.weights, rtol=0, atol=1e-12)
    assert snapshots[0]["version"] == n
