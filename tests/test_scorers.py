"""Scorer replicas against the real broker: a consumer group on a 4-partition requests topic, the model
followed on the model topic and swapped between polls, a replica killed mid-stream."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import numpy as np
import pytest
from kafka import KafkaProducer

from stream_neuron.config import Settings
from stream_neuron.neuron import MODEL_KINDS
from stream_neuron.snapshots import neuron_state
from tests.component import (
    STARTED,
    EndWatcher,
    Topics,
    finish,
    json_records,
    kill_hard,
    last_snapshot,
    phishing_events,
    run_component,
    send,
    wait_for,
)
from tests.kafka_helpers import client, create_topic, unique_name

pytestmark = pytest.mark.kafka

# The bound, measured in benchmarks/scoring.py: a committed snapshot is scored with within it.
SWAP_BOUND_S = 2.0


def train(bootstrap: str, events: list[dict[str, Any]], topics: Topics | None = None) -> Topics:
    topics = topics or Topics.create(bootstrap)
    send(bootstrap, topics.input, events)
    run_component(bootstrap, topics, "--standardize", "--learning-rate", "0.01", "--idle-timeout-s", "2")
    return topics


def requests(n: int, tag: str) -> list[dict[str, Any]]:
    base = phishing_events()
    return [{"id": f"{tag}-{i}", "features": base[i % len(base)]["features"]} for i in range(n)]


def scorer(
    bootstrap: str, topics: Topics, requests_topic: str, group: str, *extra: str
) -> subprocess.Popen[str]:
    command = [
        sys.executable, "-m", "stream_neuron.cli", "score", "--bootstrap-servers", bootstrap,
        "--input-topic", requests_topic, "--predictions-topic", f"{requests_topic}-pred",
        "--model-topic", topics.model, "--model-name", topics.model_name, "--group-id", group,
        "--dead-letter-topic", f"{requests_topic}-dlq", *extra,
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    STARTED.append(process)
    return process


def expected_probabilities(snapshot: dict[str, Any], events: list[dict[str, Any]]) -> np.ndarray:
    settings = Settings(standardize=True, learning_rate=0.01)
    model = MODEL_KINDS[snapshot["kind"]](snapshot["n_features"], standardize=True)
    model.load_dict(neuron_state(snapshot, settings))
    names = snapshot["feature_names"]
    X = np.array([[e["features"][n] for n in names] for e in events])
    return np.asarray(model.predict_proba(X))


def test_two_replicas_score_every_request_with_the_committed_snapshot(kafka_bootstrap: str) -> None:
    topics = train(kafka_bootstrap, phishing_events())
    snapshot = last_snapshot(kafka_bootstrap, topics)
    requests_topic = create_topic(kafka_bootstrap, unique_name("sn-requests"), partitions=4)
    asked = requests(20_000, "r")
    send(kafka_bootstrap, requests_topic, asked, keys=[r["id"].encode() for r in asked])
    group = unique_name("scorers")
    replicas = [
        scorer(kafka_bootstrap, topics, requests_topic, group, "--idle-timeout-s", "4") for _ in range(2)
    ]
    for replica in replicas:
        status, stderr = finish(replica, 300)
        assert status == 0, stderr[-3000:]
    predictions = json_records(kafka_bootstrap, f"{requests_topic}-pred")
    by_id = {p["id"]: p for p in predictions}
    assert set(by_id) == {r["id"] for r in asked}
    assert {p["model_version"] for p in predictions} == {snapshot["version"]}
    assert all(p["label"] is None for p in predictions)
    expected = expected_probabilities(snapshot, asked)
    got = np.array([by_id[r["id"]]["probability"] for r in asked])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    partitions = {p["source"]["partition"] for p in predictions}
    assert partitions == {0, 1, 2, 3}


def test_a_new_snapshot_is_scored_with_within_the_bound_and_a_foreign_one_is_refused(
    kafka_bootstrap: str,
) -> None:
    events = phishing_events()
    topics = train(kafka_bootstrap, events[:600])
    first = last_snapshot(kafka_bootstrap, topics)
    requests_topic = create_topic(kafka_bootstrap, unique_name("sn-requests"), partitions=4)
    group = unique_name("scorers")
    replicas = [scorer(kafka_bootstrap, topics, requests_topic, group) for _ in range(2)]
    watcher = EndWatcher(kafka_bootstrap, f"{requests_topic}-pred")
    send(kafka_bootstrap, requests_topic, requests(400, "before"))
    wait_for(lambda: watcher.end() >= 400, 120)
    train(kafka_bootstrap, events[600:], topics)  # the trainer learns more and commits a snapshot
    second = last_snapshot(kafka_bootstrap, topics)
    assert second["version"] > first["version"]
    time.sleep(SWAP_BOUND_S)
    after = requests(400, "after")
    send(kafka_bootstrap, requests_topic, after)
    wait_for(lambda: watcher.end() >= 800, 120)
    # A snapshot of another kind under the same name: refused, the model kept.
    foreign = dict(second, kind="perceptron", version=second["version"] + 1)
    producer = KafkaProducer(**client(kafka_bootstrap))
    producer.send(topics.model, key=topics.model_name.encode(), value=json.dumps(foreign).encode())
    producer.flush()
    producer.close()
    time.sleep(SWAP_BOUND_S)
    send(kafka_bootstrap, requests_topic, requests(400, "foreign"))
    wait_for(lambda: watcher.end() >= 1200, 120)
    watcher.close()
    logs = ""
    for replica in replicas:
        replica.terminate()
        status, stderr = finish(replica, 60)
        assert status == 0, stderr[-3000:]
        logs += stderr
    versions: dict[str, set[int]] = {}
    for p in json_records(kafka_bootstrap, f"{requests_topic}-pred"):
        versions.setdefault(p["id"].split("-")[0], set()).add(p["model_version"])
    assert versions == {
        "before": {first["version"]},
        "after": {second["version"]},
        "foreign": {second["version"]},
    }
    assert "another kind or feature schema" in logs
    by_id = {p["id"]: p for p in json_records(kafka_bootstrap, f"{requests_topic}-pred")}
    np.testing.assert_allclose(
        [by_id[r["id"]]["probability"] for r in after],
        expected_probabilities(second, after),
        rtol=0,
        atol=1e-12,
    )


def test_a_killed_replica_hands_its_partitions_to_the_other_and_no_request_is_lost(
    kafka_bootstrap: str,
) -> None:
    topics = train(kafka_bootstrap, phishing_events())
    requests_topic = create_topic(kafka_bootstrap, unique_name("sn-requests"), partitions=4)
    asked = requests(60_000, "k")
    group = unique_name("scorers")
    first = scorer(kafka_bootstrap, topics, requests_topic, group, "--poll-max-records", "100")
    second = scorer(
        kafka_bootstrap, topics, requests_topic, group, "--poll-max-records", "100", "--idle-timeout-s", "5"
    )
    time.sleep(3)  # both joined
    send(kafka_bootstrap, requests_topic, asked, keys=[r["id"].encode() for r in asked])
    watcher = EndWatcher(kafka_bootstrap, f"{requests_topic}-pred")
    wait_for(lambda: watcher.end() >= 15_000, 120, 0.01)
    kill_hard(first)
    status, stderr = finish(second, 300)
    watcher.close()
    assert status == 0, stderr[-3000:]
    counts = Counter(p["id"] for p in json_records(kafka_bootstrap, f"{requests_topic}-pred"))
    assert set(counts) == {r["id"] for r in asked}  # may repeat, never lose


def test_no_model_is_one_line_and_wait_for_model_waits(kafka_bootstrap: str) -> None:
    topics = Topics.create(kafka_bootstrap)
    create_topic(kafka_bootstrap, topics.model, compacted=True)
    requests_topic = create_topic(kafka_bootstrap, unique_name("sn-requests"), partitions=2)
    refused = scorer(kafka_bootstrap, topics, requests_topic, unique_name("scorers"))
    status, stderr = finish(refused, 60)
    assert status == 1 and "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("stream-neuron score: no snapshot of model")
    waiting = scorer(
        kafka_bootstrap,
        topics,
        requests_topic,
        unique_name("scorers"),
        "--wait-for-model",
        "--idle-timeout-s",
        "4",
    )
    asked = requests(100, "w")
    send(kafka_bootstrap, requests_topic, asked)
    time.sleep(1)
    train(kafka_bootstrap, phishing_events(), topics)
    status, stderr = finish(waiting, 120)
    assert status == 0, stderr[-3000:]
    assert {p["id"] for p in json_records(kafka_bootstrap, f"{requests_topic}-pred")} == {
        r["id"] for r in asked
    }


def test_a_trainer_can_leave_the_predictions_to_the_scorers(kafka_bootstrap: str) -> None:
    topics = Topics.create(kafka_bootstrap)
    send(kafka_bootstrap, topics.input, phishing_events())
    run_component(
        kafka_bootstrap, topics, "--standardize", "--learning-rate", "0.01", "--max-events", "1250",
        "--no-publish-predictions",
    )  # fmt: skip
    from tests.component import raw_records

    assert raw_records(kafka_bootstrap, topics.predictions) == []
    final = json_records(kafka_bootstrap, topics.metrics)[-1]
    assert final["cumulative"]["accuracy"] == pytest.approx(0.8928, abs=1e-12)
    assert last_snapshot(kafka_bootstrap, topics)["version"] == 1250
