"""An operator's bad day, on whichever Kafka client is under test: a process paused for longer than the
clients' timeouts, a broker away for over a minute. Each time the component finishes its input and exits
0, learning every event once (checked against an offline replay), with a few log lines and without a
thread spinning a core while it waits."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from stream_neuron import LogisticNeuron
from tests.broker import private_broker
from tests.component import (
    EndWatcher,
    Running,
    Topics,
    json_records,
    last_snapshot,
    raw_records,
    send,
    start_component,
    synthetic_events,
    wait_for,
    weights,
)
from tests.kafka_helpers import create_topic, unique_name
from tests.test_scorers import scorer

pytestmark = pytest.mark.kafka

PAUSE_S = 65  # past the producers' request and delivery timeouts and the transaction timeout (60 s)
OUTAGE_S = 75  # past the transaction timeout: an open transaction is aborted by the broker meanwhile
IDLE_S = "8"


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def client_lines(stderr: str, since: datetime | None = None) -> list[str]:
    """The Kafka client's digested log lines (``since``: logged at that moment or later)."""
    lines = [line for line in stderr.splitlines() if "stream_neuron.kafka:" in line]
    if since is None:
        return lines
    return [line for line in lines if datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f") >= since]


def assert_learned_once(bootstrap: str, topics: Topics, X: np.ndarray, y: np.ndarray) -> None:
    offline = LogisticNeuron(X.shape[1], learning_rate=0.05)
    offline.score_then_learn(X, y)
    snapshot = last_snapshot(bootstrap, topics)
    np.testing.assert_allclose(weights(snapshot), offline.weights, rtol=0, atol=1e-12)
    assert snapshot["version"] == len(y)


@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
def test_a_process_paused_past_every_timeout_finishes_its_input(kafka_bootstrap: str, guarantee: str) -> None:
    """SIGSTOP mid-stream for 65 s: batches expire, the broker aborts the open transaction (a new epoch
    of the transactional id, which no other instance took); after SIGCONT the run finishes its input."""
    # Enough input that even librdkafka's run (over 100,000 events/s) is mid-stream at the pause.
    events, X, y = synthetic_events(150_000, 4, seed=43)
    topics = Topics.create(kafka_bootstrap)
    send(kafka_bootstrap, topics.input, events)
    process = start_component(
        kafka_bootstrap,
        topics,
        "--guarantee",
        guarantee,
        "--idle-timeout-s",
        IDLE_S,
        "--poll-max-records",
        "200",
    )
    watcher = EndWatcher(kafka_bootstrap, topics.predictions)
    wait_for(lambda: watcher.end() >= 1_000, 120, 0.01)
    os.kill(process.pid, signal.SIGSTOP)
    paused_at = watcher.end()
    time.sleep(PAUSE_S)
    os.kill(process.pid, signal.SIGCONT)
    status, stderr = process.finish(400)
    watcher.close()
    assert status == 0, stderr[-4000:]
    assert paused_at < 140_000, "the run was nearly done before the pause"
    ids = Counter(p["id"] for p in json_records(kafka_bootstrap, topics.predictions))
    assert set(ids) == {e["id"] for e in events}
    if guarantee == "exactly-once":
        assert set(ids.values()) == {1}, "read_committed: each prediction exactly once"
    assert_learned_once(kafka_bootstrap, topics, X, y)
    assert "Traceback" not in stderr


def start_trainer(bootstrap: str, topics: Topics, guarantee: str) -> Running:
    return start_component(
        bootstrap, topics, "--guarantee", guarantee, "--idle-timeout-s", IDLE_S, "--poll-max-records", "200",
        "--commit-interval-ms", "100",
    )  # fmt: skip


def test_a_broker_outage_is_ridden_through_by_both_guarantees_and_a_scorer(tmp_path: Path) -> None:
    """The broker stops for 75 s while two trainers (at least once, exactly once) and a scorer have input
    left; it comes back; each finishes everything and exits 0. Meanwhile: never the end of the input,
    never a false fencing, a few lines of log, and no core spun."""
    with private_broker(tmp_path / "kafka", seed=os.getpid() + 77) as (bootstrap, control):
        first, X1, y1 = synthetic_events(20_000, 4, seed=44)
        second, X2, y2 = synthetic_events(100_000, 4, seed=45)
        second = [e | {"id": f"late{i}"} for i, e in enumerate(second)]
        trainers = {g: Topics.create(bootstrap) for g in ("at-least-once", "exactly-once")}
        requests_topic = create_topic(bootstrap, unique_name("sn-requests"), partitions=2)
        rows, _, _ = synthetic_events(65_000, 4, seed=47)
        asked = [{"id": f"r{i}", "features": e["features"]} for i, e in enumerate(rows)]
        running: dict[str, Running] = {}
        for guarantee, topics in trainers.items():
            send(bootstrap, topics.input, first)
            running[guarantee] = start_trainer(bootstrap, topics, guarantee)
        for guarantee, topics in trainers.items():
            watcher = EndWatcher(bootstrap, topics.predictions)
            wait_for(lambda watcher=watcher: watcher.end() >= 20_000, 120, 0.05, about=running[guarantee])
            watcher.close()
        model = trainers["at-least-once"]
        send(bootstrap, requests_topic, asked[:5_000])
        running["score"] = scorer(
            bootstrap, model, requests_topic, unique_name("scorers"), "--idle-timeout-s", IDLE_S
        )
        watcher = EndWatcher(bootstrap, f"{requests_topic}-pred")
        wait_for(lambda: watcher.end() >= 5_000, 120, 0.05, about=running["score"])
        watcher.close()
        # More input while they are held still, so each has some left when the broker goes.
        for process in running.values():
            os.kill(process.pid, signal.SIGSTOP)
        for topics in trainers.values():
            send(bootstrap, topics.input, second)
        send(bootstrap, requests_topic, asked[5_000:])
        for process in running.values():
            os.kill(process.pid, signal.SIGCONT)
        time.sleep(0.3)  # mid-stream: transactions open, batches in flight
        outage_began = datetime.now()  # the logs' clock: local time
        control("stop")
        cpu_before = {name: cpu_seconds(process.pid) for name, process in running.items()}
        time.sleep(OUTAGE_S)
        cpu_during = {name: cpu_seconds(process.pid) - cpu_before[name] for name, process in running.items()}
        control("start")
        outcomes = {name: process.finish(600) for name, process in running.items()}
        for name, (status, stderr) in outcomes.items():
            assert status == 0, f"{name}:\n{stderr[-4000:]}"
            assert "Traceback" not in stderr, name
            # The outage: one warning and one recovery line (a second pair at most). Before it, the
            # test's own SIGSTOP may have cost a group heartbeat, and a just-created topic its
            # metadata: a pair each, not the outage's.
            outage = client_lines(stderr, since=outage_began)
            assert 1 <= len(outage) <= 4, f"{name}:\n" + "\n".join(client_lines(stderr))
            assert len(client_lines(stderr)) <= 8, f"{name}:\n" + "\n".join(client_lines(stderr))
            assert stderr.count("recovery failed") <= 1, f"{name}:\n{stderr[-4000:]}"
            # A scorer logs each model it swaps in: how many depends on how far the trainer gets
            # while it serves, not on the outage.
            logged = [line for line in stderr.strip().splitlines() if "serving model version" not in line]
            assert len(logged) < 25, f"{name}:\n{stderr[-4000:]}"
            assert cpu_during[name] < 0.25 * OUTAGE_S, f"{name} spun a core: {cpu_during[name]:.1f} CPU s"
        for guarantee, topics in trainers.items():
            ids = Counter(p["id"] for p in json_records(bootstrap, topics.predictions))
            assert set(ids) == {e["id"] for e in first + second}, guarantee
            if guarantee == "exactly-once":
                assert set(ids.values()) == {1}, "read_committed: each prediction exactly once"
            assert_learned_once(bootstrap, topics, np.vstack([X1, X2]), np.concatenate([y1, y2]))
        scored = {p["id"] for p in json_records(bootstrap, f"{requests_topic}-pred")}
        assert scored == {r["id"] for r in asked}


def test_the_settings_of_a_topic_not_known_yet_are_asked_again_until_it_is(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Right after topics are created, the broker asked may not know one yet: start-up asks again
    for a moment instead of failing; a topic that never appears is TopicMissingError, in one line."""
    import threading

    from stream_neuron.kafka_io import admin
    from stream_neuron.kafka_io.connection import Connection
    from stream_neuron.kafka_io.errors import TopicMissingError

    connection = Connection(bootstrap_servers=kafka_bootstrap)
    late = unique_name("late")
    threading.Timer(1.0, create_topic, (kafka_bootstrap, late), {"compacted": True}).start()
    assert admin.topic_configs(connection, "t", [late], "cleanup.policy") == {late: "compact"}
    monkeypatch.setattr(admin, "TOPIC_SETTLE_S", 1.0)
    with pytest.raises(TopicMissingError, match="never-"):
        admin.topic_configs(connection, "t", [unique_name("never")], "cleanup.policy")


def test_an_input_consumer_that_cannot_read_the_groups_offsets_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """librdkafka: after a broker restart a consumer's offset fetch was seen to time out for good while
    a new consumer read the offsets at once. After REPLACE_AFTER_FAILED_FETCHES failures in a row the
    input replaces its consumer, and the rollback that asked reads the offsets once the broker is back."""
    from confluent_kafka import Consumer, TopicPartition

    from stream_neuron.kafka_io.connection import Connection
    from stream_neuron.kafka_io.errors import KafkaIOError
    from stream_neuron.kafka_io.librdkafka import input as rd_input

    monkeypatch.setattr(rd_input, "TIMEOUT_S", 2.0)
    with private_broker(tmp_path / "kafka", seed=os.getpid() + 4242) as (bootstrap, control):
        topic, group = unique_name("offsets"), unique_name("group")
        create_topic(bootstrap, topic)
        committer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
        committer.commit(offsets=[TopicPartition(topic, 0, 5)], asynchronous=False)
        committer.close()
        connection = Connection(bootstrap_servers=bootstrap)
        consumer = rd_input.RdInputConsumer(connection, [topic], group, "t", 100, {})
        try:
            assert consumer.committed_positions() == {(topic, 0): 5}
            control("stop")
            for _ in range(rd_input.REPLACE_AFTER_FAILED_FETCHES):
                with pytest.raises(KafkaIOError):
                    consumer.committed_positions()
            assert "replaced it" in caplog.text
            control("start")
            deadline = time.monotonic() + 60
            while True:
                try:
                    assert consumer.committed_positions() == {(topic, 0): 5}
                    break
                except KafkaIOError:
                    assert time.monotonic() < deadline, "the offsets were never read after the restart"
        finally:
            consumer.close()


def test_an_output_producer_that_stalls_while_the_broker_answers_is_replaced(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """librdkafka: after a broker restart a producer was seen to leave a partition without a leader for
    minutes while the broker answered (confluentinc/librdkafka#5430). Records for a topic the broker
    does not know yet stall the same way, the broker answering all along; after STALL_S the sender
    replaces its producer and sends every unacknowledged record again, through the new one: none lost."""
    from stream_neuron.kafka_io import delivery
    from stream_neuron.kafka_io.connection import Connection
    from stream_neuron.kafka_io.delivery import AtLeastOnceOutput
    from stream_neuron.kafka_io.librdkafka import sender as rd_sender
    from stream_neuron.records import OutputRecord
    from tests.kafka_helpers import topic_exists

    monkeypatch.setattr(rd_sender, "STALL_S", 2.0)
    monkeypatch.setattr(delivery, "SETTLE_WAIT_S", 1.0)
    topic = unique_name("stalled")
    sender = rd_sender.RdSender(Connection(bootstrap_servers=kafka_bootstrap), "t", "none", 1024 * 1024)

    deadline = time.monotonic() + 60

    def writable_once_replaced() -> None:
        assert time.monotonic() < deadline, "the stalled producer was never replaced"
        if "replaced it" in caplog.text and not topic_exists(kafka_bootstrap, topic):
            create_topic(kafka_bootstrap, topic)

    output = AtLeastOnceOutput(sender, check=writable_once_replaced)
    values = [f"v{i}".encode() for i in range(50)]
    try:
        output.send(OutputRecord(topic, None, value, []) for value in values)
        with monkeypatch.context() as away:  # the broker away: an outage, never a replacement
            away.setattr(rd_sender, "answers", lambda connection: False)
            for _ in range(4):
                assert sender.settle(1.0) is None
            assert "replaced it" not in caplog.text
        assert output.flush() == []
    finally:
        output.close()
    assert "the output producer had 50 records unacknowledged" in caplog.text
    assert {r.value for r in raw_records(kafka_bootstrap, topic)} == set(values)


def test_an_input_consumer_whose_metadata_requests_fail_while_the_broker_answers_is_replaced(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """librdkafka: after a broker restart on a loaded machine, a run's consumer was found inside its
    periodic metadata request for minutes, never reaching the end of its input. Failed checks in a row
    while a new connection to the broker succeeds replace the consumer, which reads on from where it
    was: every record once, in order. While the broker is away, nothing is replaced."""
    from stream_neuron.kafka_io.connection import Connection
    from stream_neuron.kafka_io.librdkafka import input as rd_input

    topic = create_topic(kafka_bootstrap, unique_name("wedged"), partitions=2)
    send(kafka_bootstrap, topic, [{"i": i} for i in range(300)], keys=[str(i).encode() for i in range(300)])
    monkeypatch.setattr(rd_input, "PARTITION_CHECK_S", 0.0)
    consumer = rd_input.RdInputConsumer(
        Connection(bootstrap_servers=kafka_bootstrap), [topic], unique_name("g"), "t", 50, {}
    )
    read: list[tuple[int, int]] = []

    def poll_until(count: int) -> None:
        deadline = time.monotonic() + 30
        while len(read) < count:
            assert time.monotonic() < deadline, f"read {len(read)} of {count}"
            read.extend((r.partition, r.offset) for r in consumer.poll(200, 50))

    try:
        poll_until(100)
        working = rd_input.topic_partitions
        monkeypatch.setattr(rd_input, "topic_partitions", lambda *args: None)
        monkeypatch.setattr(rd_input, "answers", lambda connection: False)
        for _ in range(2 * rd_input.REPLACE_AFTER_FAILED_FETCHES):
            read.extend((r.partition, r.offset) for r in consumer.poll(200, 50))
        assert "replaced it" not in caplog.text, "replaced while the broker was away"
        monkeypatch.undo()
        monkeypatch.setattr(rd_input, "PARTITION_CHECK_S", 0.0)
        monkeypatch.setattr(rd_input, "topic_partitions", lambda *args: None)
        read.extend((r.partition, r.offset) for r in consumer.poll(200, 50))
        assert "the input consumer could not read the input's metadata" in caplog.text
        monkeypatch.setattr(rd_input, "topic_partitions", working)
        poll_until(300)
        assert consumer.exhausted()
    finally:
        consumer.close()
    assert len(read) == len(set(read)) == 300
    for partition in (0, 1):
        offsets = [o for p, o in read if p == partition]
        assert offsets == list(range(len(offsets)))
