"""What operations do to a running component, against the real broker: a second instance of the same
model, partitions added while running, a deleted output topic. (Pauses and outages:
``test_bad_days.py``.)"""

from __future__ import annotations

import signal
import time
from collections import Counter

import numpy as np
import pytest
from kafka.admin import KafkaAdminClient, NewPartitions

from stream_neuron import LogisticNeuron
from tests.component import (
    EndWatcher,
    Topics,
    finish,
    json_records,
    last_snapshot,
    send,
    start_component,
    synthetic_events,
    wait_for,
    weights,
)
from tests.kafka_helpers import delete_topic, topic_exists

pytestmark = pytest.mark.kafka


def test_a_second_at_least_once_instance_takes_over_and_the_first_stops(kafka_bootstrap: str) -> None:
    events, X, y = synthetic_events(40_000, 4, seed=41)
    topics = Topics.create(kafka_bootstrap)
    send(kafka_bootstrap, topics.input, events[:20_000])
    first = start_component(kafka_bootstrap, topics, "--poll-max-records", "100")
    watcher = EndWatcher(kafka_bootstrap, topics.predictions)
    wait_for(lambda: watcher.end() >= 2_000, 120, 0.01)
    second = start_component(kafka_bootstrap, topics, "--idle-timeout-s", "4")
    started = time.monotonic()
    status, stderr = finish(first, 60)
    assert status == 3, stderr[-3000:]
    assert time.monotonic() - started < 30  # within seconds (a checkpoint or two), not at the end
    assert "another instance took over model" in stderr.strip().splitlines()[-1]
    send(kafka_bootstrap, topics.input, events[20_000:])
    status, stderr = finish(second, 300)
    assert status == 0, stderr[-3000:]
    watcher.close()
    offline = LogisticNeuron(4, learning_rate=0.05)
    offline.score_then_learn(X, y)
    snapshot = last_snapshot(kafka_bootstrap, topics)
    np.testing.assert_allclose(weights(snapshot), offline.weights, rtol=0, atol=1e-12)
    assert snapshot["version"] == 40_000


def test_partitions_added_while_running_are_read_and_counted_in_the_lag(kafka_bootstrap: str) -> None:
    topics = Topics.create(kafka_bootstrap, partitions=1)
    events, _, _ = synthetic_events(3_000, 3, seed=42)
    send(kafka_bootstrap, topics.input, events[:1_000])
    process = start_component(kafka_bootstrap, topics, "--metrics-interval-s", "1")
    watcher = EndWatcher(kafka_bootstrap, topics.predictions)
    wait_for(lambda: watcher.end() >= 1_000, 120)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_partitions({topics.input: NewPartitions(total_count=3)})
    admin.close()
    send(kafka_bootstrap, topics.input, events[1_000:], keys=[f"k{i}".encode() for i in range(2_000)])
    wait_for(lambda: watcher.end() >= 3_000, 120)
    watcher.close()
    process.send_signal(signal.SIGTERM)
    status, stderr = finish(process, 60)
    assert status == 0, stderr[-3000:]
    assert "new partitions" in stderr
    ids = Counter(p["id"] for p in json_records(kafka_bootstrap, topics.predictions))
    assert set(ids) == {e["id"] for e in events}
    partitions = {p["source"]["partition"] for p in json_records(kafka_bootstrap, topics.predictions)}
    assert partitions == {0, 1, 2}
    final = json_records(kafka_bootstrap, topics.metrics)[-1]
    assert final["lag"] == 0 and final["events"] == 3_000
    assert sorted(last_snapshot(kafka_bootstrap, topics)["offsets"]) == [
        f"{topics.input}:{p}" for p in range(3)
    ]


@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
def test_a_deleted_output_topic_ends_the_run_with_one_line_naming_it(
    kafka_bootstrap: str, guarantee: str
) -> None:
    events, _, _ = synthetic_events(2_000, 3, seed=45)
    topics = Topics.create(kafka_bootstrap)
    process = start_component(kafka_bootstrap, topics, "--guarantee", guarantee, "--no-create-topics")
    # --no-create-topics with missing outputs is itself a refusal: create them as an operator would.
    status, stderr = finish(process, 60)
    assert status == 1 and "topics missing" in stderr.strip().splitlines()[-1]
    process = start_component(kafka_bootstrap, topics, "--guarantee", guarantee)
    send(kafka_bootstrap, topics.input, events[:1_000])
    watcher = EndWatcher(kafka_bootstrap, topics.predictions)
    wait_for(lambda: watcher.end() >= 1_000, 120)
    watcher.close()
    delete_topic(kafka_bootstrap, topics.predictions)
    wait_for(lambda: not topic_exists(kafka_bootstrap, topics.predictions), 60)
    send(kafka_bootstrap, topics.input, events[1_000:])
    status, stderr = finish(process, 60)  # within 30 s of the deletion, a timeout's worth of margin
    last = stderr.strip().splitlines()[-1]
    assert status == 1, stderr[-3000:]
    assert topics.predictions in last and "Traceback" not in stderr, stderr[-3000:]
