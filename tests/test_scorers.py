"""Scorer replicas against the real broker: a consumer group on a 4-partition requests topic, the model
followed on the model topic and swapped between polls, a replica killed mid-stream."""

from __future__ import annotations

import json
import sys
from collections import Counter
from typing import Any

import numpy as np
import pytest
from kafka import KafkaProducer

from stream_neuron.config import Settings
from stream_neuron.neuron import MODEL_KINDS
from stream_neuron.snapshots import neuron_state
from tests.component import (
    EndWatcher,
    Running,
    Topics,
    finish,
    json_records,
    kill_hard,
    last_snapshot,
    phishing_events,
    run_component,
    send,
    start,
    wait_for,
)
from tests.datasets import river_phishing_correct
from tests.kafka_helpers import client, create_topic, unique_name

pytestmark = pytest.mark.kafka

PROBE_ROUNDS = 100


def train(bootstrap: str, events: list[dict[str, Any]], topics: Topics | None = None) -> Topics:
    topics = topics or Topics.create(bootstrap)
    send(bootstrap, topics.input, events)
    run_component(bootstrap, topics, "--standardize", "--learning-rate", "0.01", "--idle-timeout-s", "2")
    return topics


def requests(n: int, tag: str) -> list[dict[str, Any]]:
    base = phishing_events()
    return [{"id": f"{tag}-{i}", "features": base[i % len(base)]["features"]} for i in range(n)]


def scorer(bootstrap: str, topics: Topics, requests_topic: str, group: str, *extra: str) -> Running:
    command = [
        sys.executable, "-m", "stream_neuron", "score", "--bootstrap-servers", bootstrap,
        "--input-topic", requests_topic, "--predictions-topic", f"{requests_topic}-pred",
        "--model-topic", topics.model, "--model-name", topics.model_name, "--group-id", group,
        "--dead-letter-topic", f"{requests_topic}-dlq", *extra,
    ]  # fmt: skip
    return start(command)


def served_version(bootstrap: str, requests_topic: str, version: int, partitions: int = 4) -> None:
    """Waits until a request on every partition is scored with model ``version`` (probe requests, one
    a partition, round after round): every replica has swapped to it."""
    base = phishing_events()[0]["features"]
    producer = KafkaProducer(**client(bootstrap))
    try:
        for round_ in range(PROBE_ROUNDS):
            ids = [f"probe{round_}x{p}" for p in range(partitions)]
            for p, probe_id in enumerate(ids):
                value = json.dumps({"id": probe_id, "features": base}).encode()
                producer.send(requests_topic, value=value, partition=p)
            producer.flush()
            seen: dict[str, int] = {}
            wait_for(lambda ids=ids, seen=seen: _probed(bootstrap, requests_topic, ids, seen), 60, 0.1)
            if set(seen.values()) == {version}:
                return
        raise AssertionError(f"the replicas did not serve version {version}: {seen}")
    finally:
        producer.close()


def _probed(bootstrap: str, requests_topic: str, ids: list[str], seen: dict[str, int]) -> bool:
    for p in json_records(bootstrap, f"{requests_topic}-pred"):
        if p["id"] in ids:
            seen[p["id"]] = p["model_version"]
    return len(seen) == len(ids)


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


def test_a_new_snapshot_is_served_by_every_replica_and_a_foreign_one_is_refused(
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
    served_version(kafka_bootstrap, requests_topic, second["version"])
    probes = len(
        [p for p in json_records(kafka_bootstrap, f"{requests_topic}-pred") if p["id"].startswith("probe")]
    )
    after = requests(400, "after")
    send(kafka_bootstrap, requests_topic, after)
    wait_for(lambda: watcher.end() >= 800 + probes, 120)
    # A snapshot of another kind under the same name: refused, the model kept.
    foreign = dict(second, kind="perceptron", version=second["version"] + 1)
    producer = KafkaProducer(**client(kafka_bootstrap))
    producer.send(topics.model, key=topics.model_name.encode(), value=json.dumps(foreign).encode())
    producer.flush()
    producer.close()
    for replica in replicas:
        replica.wait_for_line("another kind or feature schema")
    send(kafka_bootstrap, requests_topic, requests(400, "foreign"))
    wait_for(lambda: watcher.end() >= 1200 + probes, 120)
    watcher.close()
    logs = ""
    for replica in replicas:
        replica.terminate()
        status, stderr = finish(replica, 60)
        assert status == 0, stderr[-3000:]
        logs += stderr
    versions: dict[str, set[int]] = {}
    for p in json_records(kafka_bootstrap, f"{requests_topic}-pred"):
        if not p["id"].startswith("probe"):
            versions.setdefault(p["id"].split("-")[0], set()).add(p["model_version"])
    assert versions == {
        "before": {first["version"]},
        "after": {second["version"]},
        "foreign": {second["version"]},
    }
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
    # Idle for longer than the group's session timeout (10 s): the survivor may finish its own half
    # before the group notices the killed one and hands it the rest.
    second = scorer(
        kafka_bootstrap, topics, requests_topic, group, "--poll-max-records", "100", "--idle-timeout-s", "20"
    )
    all_four = "serving partitions [0, 1, 2, 3]"

    def shared() -> bool:  # both joined the group, and each serves a part of the topic
        shares = [r.last_line("serving partitions") for r in (first, second)]
        return all(share and all_four not in share and "none" not in share for share in shares)

    wait_for(shared, 120)
    send(kafka_bootstrap, requests_topic, asked, keys=[r["id"].encode() for r in asked])
    watcher = EndWatcher(kafka_bootstrap, f"{requests_topic}-pred")
    wait_for(lambda: watcher.end() >= 15_000, 120, 0.01)
    taken_over = second.count(all_four) + 1
    kill_hard(first)
    second.wait_for_line(all_four, count=taken_over)  # the survivor took every partition over
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
    waiting.wait_for_line("waiting for a snapshot")
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
    assert final["cumulative"]["accuracy"] == pytest.approx(river_phishing_correct(0.01) / 1250, abs=1e-12)
    assert last_snapshot(kafka_bootstrap, topics)["version"] == 1250
