"""Poison records against the real broker, by category, each followed by a restart: nothing a producer
sends stops the pipeline, nothing is lost, and the model is the one the good events alone make.

Producers here: kafka-python, and kcat (librdkafka) for what kafka-python cannot send: compressed
batches in every codec Kafka has and header keys that are not UTF-8."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import numpy as np
import pytest

from stream_neuron import LogisticNeuron
from stream_neuron.contracts import (
    ERROR_CLASS_HEADER,
    ERROR_REASON_HEADER,
    ORIGINAL_BYTES_HEADER,
    SOURCE_OFFSET_HEADER,
    TRUNCATED_HEADER,
)
from tests.component import Topics, json_records, last_snapshot, raw_records, run_component, send
from tests.kafka_helpers import alter_topic, create_topic, kcat_produce
from tests.test_poison_records import CORPUS

pytestmark = pytest.mark.kafka

NAMES = ["a", "b", "c"]
PREDICTIONS_LIMIT = 64 * 1024
OVERSIZED = b"[" + b"7," * 300_000 + b"7]"
DEAD_LETTERS_LIMIT = 128 * 1024


def good_event(tag: str, i: int) -> dict[str, Any]:
    rng = np.random.default_rng(abs(hash((tag, i))) % 2**32)
    return {
        "id": f"{tag}-{i}",
        "features": dict(zip(NAMES, rng.normal(size=3).tolist(), strict=True)),
        "label": i % 2,
    }


class Stream:
    """The input as produced, in order: what each offset is, and the good events in order."""

    def __init__(self, bootstrap: str, topics: Topics) -> None:
        self.bootstrap, self.topics = bootstrap, topics
        self.kinds: list[str] = []  # "good" or the poison's error class, by offset
        self.good: list[dict[str, Any]] = []
        self.oversized: set[int] = set()  # offsets of records larger than the dead-letter topic takes

    def goods(self, tag: str, n: int, *kcat_options: str | bytes) -> None:
        events = [good_event(tag, i) for i in range(n)]
        if kcat_options:
            kcat_produce(self.bootstrap, self.topics.input, [json.dumps(e) for e in events], *kcat_options)  # type: ignore[arg-type]
        else:
            send(self.bootstrap, self.topics.input, events)
        self.kinds += ["good"] * n
        self.good += events

    def poison(
        self, value: bytes | None, error_class: str, headers: list[tuple[str, bytes]] | None = None
    ) -> None:
        send(self.bootstrap, self.topics.input, [value], keys=[b"poison"], headers=[headers or []])
        self.kinds.append(error_class)


def fill(stream: Stream, round_: int) -> None:
    """Every category, good events around each."""
    stream.goods(f"r{round_}-plain", 20)
    for codec in ("gzip", "snappy", "lz4", "zstd"):  # compressed by the producer: read like any other
        stream.goods(f"r{round_}-{codec}", 15, "-z", codec)
    stream.goods(f"r{round_}-odd-header-key", 5, "-H", b"\xff\xfe-key=v", "-H", "plain=1")
    for name, value, error_class in CORPUS:
        if error_class == "OversizedRecord":
            continue  # the corpus's size is the processor test's --max-record-bytes
        stream.poison(value, error_class, [("why", name.encode())])
        stream.goods(f"r{round_}-after-{len(stream.kinds)}", 2)
    # A prediction larger than the predictions topic takes: a long id, escaped 6 bytes a character.
    stream.poison(
        json.dumps({"id": "é" * 12_000, "features": [1.0, 2.0, 3.0], "label": 1}).encode(),
        "PredictionTooLarge",
    )
    # A bad record the input takes but the dead-letter topic does not: cut to fit.
    stream.oversized.add(len(stream.kinds))
    stream.poison(OVERSIZED, "InvalidEvent")
    stream.goods(f"r{round_}-tail", 30)


def offline(events: list[dict[str, Any]]) -> LogisticNeuron:
    model = LogisticNeuron(3, learning_rate=0.05)
    X = np.array([[e["features"][n] for n in NAMES] for e in events])
    model.score_then_learn(X, np.array([e["label"] for e in events], dtype=float))
    return model


def check(stream: Stream, guarantee: str) -> None:
    bootstrap, topics = stream.bootstrap, stream.topics
    dead = {
        int(dict(r.headers)[SOURCE_OFFSET_HEADER]): r for r in raw_records(bootstrap, topics.dead_letters)
    }
    expected_dead = {offset: kind for offset, kind in enumerate(stream.kinds) if kind != "good"}
    assert set(dead) == set(expected_dead), sorted(set(dead) ^ set(expected_dead))
    for offset, record in dead.items():
        headers = dict(record.headers)
        assert headers[ERROR_CLASS_HEADER].decode() == expected_dead[offset], headers[ERROR_REASON_HEADER]
        assert len(record.value or b"") + len(record.key or b"") < DEAD_LETTERS_LIMIT
        if offset in stream.oversized:
            assert headers[TRUNCATED_HEADER] == b"value"
            assert int(headers[ORIGINAL_BYTES_HEADER]) == len(OVERSIZED)
            assert OVERSIZED.startswith(record.value or b"x")
        else:
            assert TRUNCATED_HEADER not in headers
    predictions = json_records(bootstrap, topics.predictions)
    counts = Counter(p["id"] for p in predictions)
    assert set(counts) == {e["id"] for e in stream.good}
    if guarantee == "exactly-once":
        assert max(counts.values()) == 1
    model = offline(stream.good)
    snapshot = last_snapshot(bootstrap, topics)
    np.testing.assert_allclose(snapshot["weights"], model.weights, rtol=0, atol=1e-12)
    assert snapshot["version"] == len(stream.good)
    header_keyed = [
        r for r in raw_records(bootstrap, topics.input) if any(k.startswith("\\xff") for k, _ in r.headers)
    ]
    # kcat wrote the invalid keys (the component read past them); 5 such records a round.
    assert len(header_keyed) == 5 * sum(e["id"].endswith("odd-header-key-0") for e in stream.good)


@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
def test_every_poison_category_then_a_restart(kafka_bootstrap: str, guarantee: str) -> None:
    topics = Topics.create(kafka_bootstrap)
    create_topic(kafka_bootstrap, topics.predictions, configs={"max.message.bytes": str(PREDICTIONS_LIMIT)})
    create_topic(kafka_bootstrap, topics.dead_letters, configs={"max.message.bytes": str(DEAD_LETTERS_LIMIT)})
    stream = Stream(kafka_bootstrap, topics)
    flags = (
        "--guarantee", guarantee, "--learning-rate", "0.05", "--feature-names", "a,b,c",
        "--idle-timeout-s", "3", "--max-feature-abs", "1e12",
        "--compression-type", "zstd" if guarantee == "exactly-once" else "lz4",
    )  # fmt: skip
    for round_ in (1, 2):  # the second run restarts from the first one's snapshot
        fill(stream, round_)
        done = run_component(kafka_bootstrap, topics, *flags)
        assert "Traceback" not in done.stderr
        check(stream, guarantee)


@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
def test_an_output_the_broker_refuses_becomes_a_dead_letter_and_the_stream_goes_on(
    kafka_bootstrap: str, guarantee: str
) -> None:
    """A topic limit lowered after the start: the size check cannot know, the broker refuses. Both
    guarantees dead-letter the event it answers and replay since the last checkpoint without it, so
    both learn the same model: every event but that one."""
    topics = Topics.create(kafka_bootstrap)
    create_topic(kafka_bootstrap, topics.predictions)
    # The smallest output topic caps the producer's batches (here under the 20000 bytes set below):
    # the broker then refuses the one large prediction, not a batch of small ones.
    create_topic(kafka_bootstrap, topics.metrics, configs={"max.message.bytes": "16384"})
    events = [good_event("x", i) for i in range(400)]
    events[250]["id"] = "long-" + "q" * 30_000
    send(kafka_bootstrap, topics.input, events[:10])
    from tests.component import EndWatcher, finish, start_component, wait_for

    process = start_component(
        kafka_bootstrap, topics, "--guarantee", guarantee, "--idle-timeout-s", "4", "--learning-rate", "0.05"
    )
    watcher = EndWatcher(kafka_bootstrap, topics.predictions)
    wait_for(lambda: watcher.end() >= 10, 120)
    watcher.close()
    alter_topic(kafka_bootstrap, topics.predictions, {"max.message.bytes": "20000"})
    send(kafka_bootstrap, topics.input, events[10:])
    status, stderr = finish(process, 300)
    assert status == 0, stderr[-4000:]
    predictions = json_records(kafka_bootstrap, topics.predictions)
    ids = Counter(p["id"] for p in predictions)
    assert set(ids) == {e["id"] for i, e in enumerate(events) if i != 250}
    if guarantee == "exactly-once":
        assert max(ids.values()) == 1
    (dead,) = raw_records(kafka_bootstrap, topics.dead_letters)
    headers = dict(dead.headers)
    assert headers[ERROR_CLASS_HEADER] == b"RefusedByBroker" and headers[SOURCE_OFFSET_HEADER] == b"250"
    assert json.loads(dead.value or b"")["id"] == events[250]["id"]  # the input as it came
    snapshot = last_snapshot(kafka_bootstrap, topics)
    kept = [e for i, e in enumerate(events) if i != 250]
    np.testing.assert_allclose(snapshot["weights"], offline(kept).weights, rtol=0, atol=1e-12)
