"""Crashes, signals and start-up errors of ``stream-neuron run`` against the real broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from stream_neuron import LogisticNeuron, launch
from tests.component import (
    EndWatcher,
    Topics,
    command,
    committed_offset,
    json_records,
    kill_hard,
    last_snapshot,
    run_component,
    send,
    start_component,
    synthetic_events,
    wait_for,
    weights,
)

pytestmark = pytest.mark.kafka


def tunables_of(pid: int) -> str | None:
    """The ``GLIBC_TUNABLES`` of a running process's environment."""
    with open(f"/proc/{pid}/environ", "rb") as environ:
        variables = dict(item.partition(b"=")[::2] for item in environ.read().split(b"\0") if item)
    value = variables.get(b"GLIBC_TUNABLES")
    return None if value is None else value.decode()


def started_tunables() -> str | None:
    """What a command started from this environment runs with (``stream_neuron.launch``)."""
    restarted = launch.command_environment(os.environ)
    return os.environ.get("GLIBC_TUNABLES") if restarted is None else restarted["GLIBC_TUNABLES"]


def test_sigkill_mid_stream_then_restart_learns_every_event_once(kafka_bootstrap: str) -> None:
    n = 60_000
    events, X, y = synthetic_events(n, 8, seed=8)
    topics = Topics.create(kafka_bootstrap)
    send(kafka_bootstrap, topics.input, events)
    flags = ("--learning-rate", "0.05", "--snapshot-every", "700", "--poll-max-records", "300")
    watcher = EndWatcher(kafka_bootstrap, topics.predictions)
    for kill_at in (n // 5, n // 2):
        process = start_component(kafka_bootstrap, topics, *flags)
        wait_for(lambda p=process, k=kill_at: watcher.end() >= k or p.poll() is not None, 240, 0.01)
        assert process.poll() is None, "the run finished before the kill: make the stream longer"
        # the pid started is the run's own: it restarted in place, under the allocator's huge pages
        assert tunables_of(process.pid) == started_tunables()
        kill_hard(process)
    watcher.close()
    run_component(kafka_bootstrap, topics, *flags, "--idle-timeout-s", "3")

    offline = LogisticNeuron(8, learning_rate=0.05)
    expected = offline.score_then_learn(X, y)
    snapshot = last_snapshot(kafka_bootstrap, topics)
    assert snapshot["version"] == n
    np.testing.assert_allclose(weights(snapshot), offline.weights, rtol=0, atol=1e-12)
    assert snapshot["bias"] == pytest.approx(offline.bias, abs=1e-12)

    predictions = json_records(kafka_bootstrap, topics.predictions)
    by_id: dict[str, list[float]] = {}
    for p in predictions:
        by_id.setdefault(p["id"], []).append(p["probability"])
    assert set(by_id) == {f"e{i}" for i in range(n)}
    for i in range(n):
        # A replayed event is scored by the same weights again: its repeats are identical.
        assert by_id[f"e{i}"] == [pytest.approx(expected[i], abs=1e-12)] * len(by_id[f"e{i}"])
    final = json_records(kafka_bootstrap, topics.metrics)[-1]
    assert (final["events"], final["labelled"]) == (n, n)


@pytest.mark.parametrize(
    ("point", "replays"),
    [("after-publish", True), ("after-produce", False), ("after-commit", False)],
)
def test_crash_at_exact_points_learns_every_event_once(
    kafka_bootstrap: str, point: str, replays: bool
) -> None:
    events, X, y = synthetic_events(4_000, 5, seed=12)
    topics = Topics.create(kafka_bootstrap)
    send(kafka_bootstrap, topics.input, events)
    # Checkpoints every 500 updates (polls of 200): crashes land between, at and after checkpoints.
    flags = (
        "--learning-rate",
        "0.05",
        "--snapshot-every",
        "500",
        "--poll-max-records",
        "200",
        "--idle-timeout-s",
        "3",
    )
    for on in (3, 2):  # the third checkpoint (or poll) of the first run, the second of the next
        env = dict(os.environ, STREAM_NEURON_TEST_CRASH_AT=point, STREAM_NEURON_TEST_CRASH_ON=str(on))
        done = subprocess.run(
            command(kafka_bootstrap, topics, *flags),
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == -9, (
            f"expected the injected SIGKILL, got {done.returncode}: {done.stderr[-2000:]}"
        )
    run_component(kafka_bootstrap, topics, *flags)
    offline = LogisticNeuron(5, learning_rate=0.05)
    expected = offline.score_then_learn(X, y)
    snapshot = last_snapshot(kafka_bootstrap, topics)
    np.testing.assert_allclose(weights(snapshot), offline.weights, rtol=0, atol=1e-12)
    assert snapshot["version"] == len(y)
    predictions = json_records(kafka_bootstrap, topics.predictions)
    assert {p["id"] for p in predictions} == {f"e{i}" for i in range(len(y))}
    for p in predictions:
        assert p["probability"] == pytest.approx(expected[int(p["id"][1:])], abs=1e-12)
    if replays:  # the tail after the last checkpoint is published again (whether the killed process's
        # sends reached the broker depends on the client's timing: librdkafka may not have sent them)
        assert len(predictions) >= len(y)
    else:
        assert len(predictions) == len(y)


def test_a_snapshot_in_flight_lands_between_polls_and_releases_what_it_held(kafka_bootstrap: str) -> None:
    """A checkpoint hands its snapshot over without waiting for it: once the broker acknowledges it,
    the running loop commits its offsets and publishes the outputs held back behind it, with no later
    checkpoint and no end of the run to do it (every other checkpoint is pushed out of reach)."""
    n, checkpoint_at = 1_100, 1_000
    events, X, y = synthetic_events(n, 4, seed=21)
    topics = Topics.create(kafka_bootstrap)
    process = start_component(
        kafka_bootstrap, topics, "--learning-rate", "0.1", "--snapshot-every", str(checkpoint_at),
        "--poll-max-records", "100", "--commit-every", "1000000", "--commit-interval-ms", "600000",
        "--snapshot-interval-s", "600", "--metrics-every", "100000", "--metrics-interval-s", "600",
    )  # fmt: skip
    send(kafka_bootstrap, topics.input, events)
    watcher = EndWatcher(kafka_bootstrap, topics.predictions)
    wait_for(
        lambda: (
            watcher.end() >= n
            and committed_offset(kafka_bootstrap, topics.group, topics.input) == checkpoint_at
        ),
        120,
        about=process,
    )
    watcher.close()
    assert process.poll() is None  # still running: the loop did it, not the final commit
    snapshot = last_snapshot(kafka_bootstrap, topics)
    assert snapshot["version"] == checkpoint_at and snapshot["offsets"] == {
        f"{topics.input}:0": checkpoint_at
    }
    predictions = json_records(kafka_bootstrap, topics.predictions)
    assert sorted(int(p["id"][1:]) for p in predictions) == list(range(n))  # each once, none held back
    process.send_signal(signal.SIGTERM)
    status, stderr = process.finish(60)
    assert status == 0, stderr
    assert committed_offset(kafka_bootstrap, topics.group, topics.input) == n
    offline = LogisticNeuron(4, learning_rate=0.1)
    offline.score_then_learn(X, y)
    np.testing.assert_allclose(
        weights(last_snapshot(kafka_bootstrap, topics)), offline.weights, rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_finishes_checkpoints_and_exits_zero(
    kafka_bootstrap: str, stop_signal: signal.Signals
) -> None:
    events, X, y = synthetic_events(5000, 4, seed=2)
    topics = Topics.create(kafka_bootstrap)
    process = start_component(kafka_bootstrap, topics, "--learning-rate", "0.1", "--metrics-every", "100000")
    send(kafka_bootstrap, topics.input, events)
    watcher = EndWatcher(kafka_bootstrap, topics.predictions)
    wait_for(lambda: watcher.end() >= 5000, 120)
    watcher.close()
    process.send_signal(stop_signal)
    status, stderr = process.finish(60)
    assert status == 0, stderr
    assert stop_signal.name in stderr
    assert committed_offset(kafka_bootstrap, topics.group, topics.input) == 5000
    snapshot = last_snapshot(kafka_bootstrap, topics)
    offline = LogisticNeuron(4, learning_rate=0.1)
    offline.score_then_learn(X, y)
    np.testing.assert_allclose(weights(snapshot), offline.weights, rtol=0, atol=1e-12)
    assert snapshot["offsets"] == {f"{topics.input}:0": 5000}
    metrics = json_records(kafka_bootstrap, topics.metrics)
    assert len(metrics) == 1 and metrics[0]["events"] == 5000  # the shutdown record
    # Logs: one line per lifecycle event, never one per event.
    assert len(stderr.strip().splitlines()) < 10


def run_cli(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream_neuron", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def test_no_broker_is_one_clear_line_and_non_zero() -> None:
    done = run_cli("run", "--bootstrap-servers", "127.0.0.1:1", "--connect-timeout-s", "1")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "stream-neuron run: no Kafka broker answers at 127.0.0.1:1: start one (deploy/local-kafka start, "
        "or docker compose up kafka) or fix --bootstrap-servers"
    ]


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--batch-size", "0"], "batch_size: Input should be greater than or equal to 1"),
        (["--learning-rate", "fast"], "learning_rate: not a list of numbers: 'fast'"),
        (["--input-topic", "same", "--predictions-topic", "same"], "the topics must be distinct"),
        (["--feature-names", "a,b,a"], "feature names must be unique"),
    ],
)
def test_bad_flags_are_one_clear_line(flags: list[str], words: str) -> None:
    done = run_cli("run", *flags)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert (
        len(lines) == 1 and lines[0].startswith("stream-neuron run: invalid settings: ") and words in lines[0]
    )


def test_missing_input_topic_and_model_kind_mismatch_are_startup_errors(kafka_bootstrap: str) -> None:
    topics = Topics.create(kafka_bootstrap)
    done = run_cli("run", *topics.flags(kafka_bootstrap)[:2], "--input-topic", "no-such-topic-here")
    assert done.returncode == 1 and "input topic 'no-such-topic-here' does not exist" in done.stderr

    send(kafka_bootstrap, topics.input, [{"features": [1.0, 2.0], "label": 1}])
    run_component(kafka_bootstrap, topics, "--max-events", "1")
    done = run_cli("run", *topics.flags(kafka_bootstrap), "--model", "perceptron", "--max-events", "1")
    assert done.returncode == 1
    assert "is a logistic model but --model is perceptron" in done.stderr


def test_restart_resumes_from_the_snapshot_and_output_topics_exist(kafka_bootstrap: str) -> None:
    events, X, y = synthetic_events(2000, 3, seed=4)
    topics = Topics.create(kafka_bootstrap)
    send(kafka_bootstrap, topics.input, events[:1200])
    run_component(kafka_bootstrap, topics, "--idle-timeout-s", "2")
    send(kafka_bootstrap, topics.input, events[1200:])
    run_component(kafka_bootstrap, topics, "--idle-timeout-s", "2")
    offline = LogisticNeuron(3, learning_rate=0.05)
    offline.score_then_learn(X, y)
    np.testing.assert_allclose(
        weights(last_snapshot(kafka_bootstrap, topics)), offline.weights, rtol=0, atol=1e-12
    )
    assert len(json_records(kafka_bootstrap, topics.predictions)) == 2000


def test_a_partial_mini_batch_is_learned_when_it_has_lingered(kafka_bootstrap: str) -> None:
    events, X, y = synthetic_events(10, 3, seed=13)
    topics = Topics.create(kafka_bootstrap)
    flags = ("--mode", "minibatch", "--batch-size", "32", "--linger-ms", "300", "--learning-rate", "0.1")
    process = start_component(kafka_bootstrap, topics, *flags)
    send(kafka_bootstrap, topics.input, events)
    watcher = EndWatcher(kafka_bootstrap, topics.predictions)
    # Ten events never fill a batch of 32: while the run goes on, only the linger can score them.
    wait_for(lambda: watcher.end() >= 10, 120)
    watcher.close()
    assert process.poll() is None
    process.send_signal(signal.SIGTERM)
    status, stderr = process.finish(60)
    assert status == 0, stderr
    offline = LogisticNeuron(3, learning_rate=0.1)
    offline.learn_batch(X, y)
    snapshot = last_snapshot(kafka_bootstrap, topics)
    assert snapshot["version"] == 1 and snapshot["pending"] == {"rows": [], "labels": [], "refs": []}
    np.testing.assert_allclose(weights(snapshot), offline.weights, rtol=0, atol=1e-12)
    assert [p["probability"] for p in json_records(kafka_bootstrap, topics.predictions)] == [0.5] * 10
