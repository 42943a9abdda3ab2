"""A restart always works or refuses with one line and an explicit operator choice: deleted, malformed
and out-of-range snapshots against the real broker, and snapshots sized for large models."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import numpy as np
import pytest
from kafka import KafkaProducer

from stream_neuron import LogisticNeuron
from tests.component import (
    Topics,
    json_records,
    last_snapshot,
    run_component,
    send,
    synthetic_events,
    wait_for,
    weights,
)
from tests.kafka_helpers import client, create_topic, delete_topic, read_to_end, recreate_topic, topic_exists

pytestmark = pytest.mark.kafka


def run_cli(bootstrap: str, topics: Topics, *extra: str) -> subprocess.CompletedProcess[str]:
    from tests.component import command

    return subprocess.run(
        command(bootstrap, topics, *extra), capture_output=True, text=True, timeout=300, check=False
    )


def write_snapshot(bootstrap: str, topics: Topics, value: bytes | None) -> None:
    producer = KafkaProducer(**client(bootstrap), acks="all")
    producer.send(topics.model, key=topics.model_name.encode(), value=value)
    producer.flush()
    producer.close()


def trained(bootstrap: str, n: int = 300) -> tuple[Topics, list[dict[str, Any]], np.ndarray, np.ndarray]:
    events, X, y = synthetic_events(n, 3, seed=n)
    topics = Topics.create(bootstrap)
    send(bootstrap, topics.input, events)
    run_component(bootstrap, topics, "--idle-timeout-s", "2")
    return topics, events, X, y


def one_line_refusal(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 1, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("stream-neuron run: ") and "Traceback" not in done.stderr, done.stderr[-3000:]
    for word in words:
        assert word in last, last


MALFORMED: list[tuple[str, bytes]] = [
    ("not JSON", b"{not json"),
    ("an array", b"[1, 2, 3]"),
    ("a missing field", json.dumps({"model": "m", "kind": "logistic"}).encode()),
    ("negative offsets", b"NEGATIVE"),
    ("NaN weights", b"NAN"),
    ("too few weights", b"SHORT"),
    ("a string count", b"STRINGCOUNT"),
    ("an offset of 2^63", b"HUGEOFFSET"),
    ("an offset of 2^64 + 1", b"HUGEROFFSET"),
    ("a scaler state that is not one", b"GARBAGESCALER"),
]


def malformed(value: bytes, good: dict[str, Any]) -> bytes:
    """The placeholders above, made from a good snapshot (so only one thing is wrong)."""
    if value == b"NEGATIVE":
        return json.dumps(good | {"offsets": {k: -5 for k in good["offsets"]}}).encode()
    if value == b"NAN":
        return json.dumps(good | {"weights": [float("nan")] * len(good["weights"])}).encode()
    if value == b"SHORT":
        return json.dumps(good | {"weights": good["weights"][:-1]}).encode()
    if value in (b"HUGEOFFSET", b"HUGEROFFSET"):
        offset = 2**63 if value == b"HUGEOFFSET" else 2**64 + 1
        return json.dumps(good | {"offsets": {k: offset for k in good["offsets"]}}).encode()
    if value == b"GARBAGESCALER":
        return json.dumps(good | {"scaler_state": {"count": "x"}}).encode()
    if value == b"STRINGCOUNT":
        return json.dumps(good | {"schedule_state": good["schedule_state"] | {"n_updates": "many"}}).encode()
    return value


@pytest.mark.parametrize(("case", "value"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_a_malformed_snapshot_refuses_with_one_line_and_new_model_starts_over(
    kafka_bootstrap: str, case: str, value: bytes
) -> None:
    topics = trained(kafka_bootstrap)[0]
    write_snapshot(kafka_bootstrap, topics, malformed(value, last_snapshot(kafka_bootstrap, topics)))
    refused = run_cli(kafka_bootstrap, topics, "--idle-timeout-s", "2")
    one_line_refusal(refused, "--on-bad-snapshot new-model")
    if case == "a scaler state that is not one":
        assert "scaler_state is not a scaler's state" in refused.stderr
    start_over(kafka_bootstrap, topics)


def test_a_new_model_choice_holds_at_the_next_start_even_with_no_new_input(kafka_bootstrap: str) -> None:
    topics = trained(kafka_bootstrap)[0]
    write_snapshot(kafka_bootstrap, topics, b"{not json")
    run_component(kafka_bootstrap, topics, "--idle-timeout-s", "2", "--on-bad-snapshot", "new-model")
    run_component(kafka_bootstrap, topics, "--idle-timeout-s", "2")  # plain: the choice was written
    start_over(kafka_bootstrap, topics)


def test_a_deleted_model_topic_refuses_then_starts_over_when_told(kafka_bootstrap: str) -> None:
    """The snapshots gone with their topic, while the group's offsets show the model ran: not a new
    model silently, but the same refusal and choice as an unusable snapshot."""
    topics = trained(kafka_bootstrap)[0]
    delete_topic(kafka_bootstrap, topics.model)
    wait_for(lambda: not topic_exists(kafka_bootstrap, topics.model), 60)
    one_line_refusal(
        run_cli(kafka_bootstrap, topics, "--idle-timeout-s", "2"),
        "has no snapshot",
        "--on-bad-snapshot new-model",
    )
    kept = run_cli(kafka_bootstrap, topics, "--idle-timeout-s", "2", "--on-bad-snapshot", "keep-model")
    one_line_refusal(kept, "no model to keep")
    run_component(kafka_bootstrap, topics, "--idle-timeout-s", "2", "--on-bad-snapshot", "new-model")
    run_component(kafka_bootstrap, topics, "--idle-timeout-s", "2")  # the choice held: a plain start
    start_over(kafka_bootstrap, topics)


def start_over(bootstrap: str, topics: Topics) -> None:
    """A new model from the group's committed offsets: the events learned before are not learned
    again, the new ones are."""
    more, X2, y2 = synthetic_events(100, 3, seed=9)
    send(bootstrap, topics.input, [e | {"id": f"n{i}"} for i, e in enumerate(more)])
    run_component(bootstrap, topics, "--idle-timeout-s", "2", "--on-bad-snapshot", "new-model")
    fresh = LogisticNeuron(3, learning_rate=0.05)
    fresh.score_then_learn(X2, y2)
    snapshot = last_snapshot(bootstrap, topics)
    np.testing.assert_allclose(weights(snapshot), fresh.weights, rtol=0, atol=1e-12)
    assert snapshot["version"] == 100
    run_component(bootstrap, topics, "--idle-timeout-s", "2")  # and the next start is plain


def test_a_deleted_model_refuses_then_starts_over_when_told(kafka_bootstrap: str) -> None:
    topics = trained(kafka_bootstrap)[0]
    write_snapshot(kafka_bootstrap, topics, None)  # a tombstone: someone deleted the model
    one_line_refusal(run_cli(kafka_bootstrap, topics, "--idle-timeout-s", "2"), "deleted", "tombstone")
    start_over(kafka_bootstrap, topics)


def test_offsets_beyond_a_recreated_input_refuse_then_keep_or_renew_the_model(kafka_bootstrap: str) -> None:
    topics, _, X, y = trained(kafka_bootstrap)
    before = last_snapshot(kafka_bootstrap, topics)
    delete_topic(kafka_bootstrap, topics.input)
    recreate_topic(kafka_bootstrap, topics.input)
    new, X2, y2 = synthetic_events(120, 3, seed=5)
    send(kafka_bootstrap, topics.input, new)
    one_line_refusal(
        run_cli(kafka_bootstrap, topics, "--idle-timeout-s", "2"), "beyond its end", "keep-model", "new-model"
    )
    run_component(kafka_bootstrap, topics, "--idle-timeout-s", "2", "--on-bad-snapshot", "keep-model")
    kept = LogisticNeuron(3, learning_rate=0.05)
    kept.score_then_learn(X, y)  # the model as it was ...
    kept.score_then_learn(X2, y2)  # ... then every event of the new topic, once
    after = last_snapshot(kafka_bootstrap, topics)
    np.testing.assert_allclose(weights(after), kept.weights, rtol=0, atol=1e-12)
    assert after["version"] == before["version"] + 120
    assert after["offsets"] == {f"{topics.input}:0": 120}
    run_component(kafka_bootstrap, topics, "--idle-timeout-s", "2")  # and the next start is plain


def test_a_model_of_17000_features_with_the_scaler_snapshots_and_restarts(kafka_bootstrap: str) -> None:
    n_features = 17_000
    rng = np.random.default_rng(1)
    names = [f"feature_{i:05d}" for i in range(n_features)]
    events = [
        {
            "id": f"e{i}",
            "features": dict(zip(names, rng.normal(size=n_features).round(3).tolist(), strict=True)),
            "label": i % 2,
        }
        for i in range(6)
    ]
    topics = Topics.create(kafka_bootstrap)
    send(kafka_bootstrap, topics.input, events[:3])
    run_component(kafka_bootstrap, topics, "--standardize", "--idle-timeout-s", "2")
    snapshot_bytes = len(read_to_end(kafka_bootstrap, topics.model)[-1].value or b"")
    assert snapshot_bytes > 1_048_588  # beyond Kafka's default record limit
    send(kafka_bootstrap, topics.input, events[3:])
    run_component(kafka_bootstrap, topics, "--standardize", "--idle-timeout-s", "2")
    assert last_snapshot(kafka_bootstrap, topics)["version"] == 6
    assert len(json_records(kafka_bootstrap, topics.predictions)) == 6


def test_a_model_topic_too_small_for_the_model_is_a_clear_refusal(kafka_bootstrap: str) -> None:
    topics = Topics.create(kafka_bootstrap)
    create_topic(kafka_bootstrap, topics.model, compacted=True, configs={"max.message.bytes": "100000"})
    names = ",".join(f"f{i}" for i in range(20_000))
    done = run_cli(kafka_bootstrap, topics, "--feature-names", names, "--standardize", "--max-events", "1")
    one_line_refusal(done, "max.message.bytes", "100,000")
    # Without pinned names, the first event that would fix too many features is a dead letter.
    wide = {"features": {f"f{i}": 1.0 for i in range(20_000)}, "label": 1}
    send(kafka_bootstrap, topics.input, [wide, {"features": {"a": 1.0, "b": 2.0}, "label": 0}])
    run_component(kafka_bootstrap, topics, "--standardize", "--idle-timeout-s", "2")
    (dead,) = read_to_end(kafka_bootstrap, topics.dead_letters)
    assert dict(dead.headers)["stream_neuron.error.class"] == b"TooManyFeatures"
    assert last_snapshot(kafka_bootstrap, topics)["feature_names"] == ["a", "b"]
