"""What operations do to a running component, against the real broker: a second instance of the same
model, partitions added while running, a paused process or broker, a deleted output topic."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from kafka.admin import KafkaAdminClient, NewPartitions

from stream_neuron import LogisticNeuron
from tests.broker import private_broker
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
from tests.kafka_helpers import delete_topic

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


def test_a_paused_process_is_not_an_idle_input(kafka_bootstrap: str) -> None:
    """SIGSTOP for longer than the idle timeout and than the clients' request timeout (30 s): the
    bounded run carries on after SIGCONT and reads all its input."""
    # Enough input that even librdkafka's run (over 100,000 events/s) is mid-stream at the pause.
    events, X, y = synthetic_events(150_000, 4, seed=43)
    topics = Topics.create(kafka_bootstrap)
    send(kafka_bootstrap, topics.input, events)
    process = start_component(kafka_bootstrap, topics, "--idle-timeout-s", "8", "--poll-max-records", "200")
    watcher = EndWatcher(kafka_bootstrap, topics.predictions)
    wait_for(lambda: watcher.end() >= 1_000, 120, 0.01)
    os.kill(process.pid, signal.SIGSTOP)
    paused_at = watcher.end()
    time.sleep(35)
    os.kill(process.pid, signal.SIGCONT)
    status, stderr = finish(process, 300)
    watcher.close()
    assert status == 0, stderr[-3000:]
    assert paused_at < 140_000, "the run was nearly done before the pause"
    assert {p["id"] for p in json_records(kafka_bootstrap, topics.predictions)} == {e["id"] for e in events}
    offline = LogisticNeuron(4, learning_rate=0.05)
    offline.score_then_learn(X, y)
    np.testing.assert_allclose(weights(last_snapshot(kafka_bootstrap, topics)), offline.weights, atol=1e-12)


def test_a_broker_outage_is_not_an_idle_input_and_is_one_warning(tmp_path: Path) -> None:
    """At least once, a 20 s outage with an 8 s idle timeout: the run waits, then reads everything; the
    client's error lines come out as one warning and one line when it recovers."""
    with private_broker(tmp_path / "kafka", seed=os.getpid() + 77) as (bootstrap, control):
        events, X, y = synthetic_events(30_000, 4, seed=44)
        topics = Topics.create(bootstrap)
        send(bootstrap, topics.input, events)
        process = start_component(bootstrap, topics, "--idle-timeout-s", "8", "--poll-max-records", "200")
        try:
            watcher = EndWatcher(bootstrap, topics.predictions)
            wait_for(lambda: watcher.end() >= 5_000, 120, 0.01)
            watcher.close()
            control("stop")
            time.sleep(20)
            control("start")
        finally:
            status, stderr = finish(process, 600)
        assert status == 0, stderr[-4000:]
        assert {p["id"] for p in json_records(bootstrap, topics.predictions)} == {e["id"] for e in events}
        offline = LogisticNeuron(4, learning_rate=0.05)
        offline.score_then_learn(X, y)
        np.testing.assert_allclose(weights(last_snapshot(bootstrap, topics)), offline.weights, atol=1e-12)
        kafka_lines = [line for line in stderr.splitlines() if "stream_neuron.kafka:" in line]
        assert 1 <= len(kafka_lines) <= 4, "\n".join(kafka_lines)
        assert len(stderr.strip().splitlines()) < 20, stderr[-4000:]


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
    time.sleep(1)
    send(kafka_bootstrap, topics.input, events[1_000:])
    status, stderr = finish(process, 240)
    last = stderr.strip().splitlines()[-1]
    assert status == 1, stderr[-3000:]
    assert topics.predictions in last and "Traceback" not in stderr, stderr[-3000:]
