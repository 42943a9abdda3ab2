"""``--guarantee exactly-once`` against the real broker: hard kills at random and at exact points, a
broker restart, and zombie fencing. A read_committed reader must see exactly one prediction per event,
and the final model must equal an uninterrupted run."""

from __future__ import annotations

import os
import random
import subprocess
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from stream_neuron import LogisticNeuron
from tests.broker import private_broker
from tests.component import (
    EndWatcher,
    Topics,
    command,
    finish,
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
from tests.datasets import synthetic

pytestmark = pytest.mark.kafka

EOS = (
    "--guarantee",
    "exactly-once",
    "--learning-rate",
    "0.05",
    "--commit-interval-ms",
    "50",
    "--poll-max-records",
    "200",
)


def load(bootstrap: str, n: int, seed: int) -> tuple[Topics, np.ndarray, np.ndarray]:
    events, X, y = synthetic_events(n, 6, seed)
    topics = Topics.create(bootstrap)
    send(bootstrap, topics.input, events)
    return topics, X, y


def check_exactly_once(bootstrap: str, topics: Topics, X: np.ndarray, y: np.ndarray) -> None:
    offline = LogisticNeuron(X.shape[1], learning_rate=0.05)
    expected = offline.score_then_learn(X, y)
    predictions = json_records(bootstrap, topics.predictions)  # read_committed
    counts = Counter(p["id"] for p in predictions)
    assert len(predictions) == len(y), f"{len(predictions)} committed predictions for {len(y)} events"
    assert set(counts) == {f"e{i}" for i in range(len(y))} and max(counts.values()) == 1
    ordered = sorted(predictions, key=lambda p: int(p["id"][1:]))
    np.testing.assert_allclose([p["probability"] for p in ordered], expected, rtol=0, atol=1e-12)
    snapshot = last_snapshot(bootstrap, topics)
    np.testing.assert_allclose(weights(snapshot), offline.weights, rtol=0, atol=1e-12)
    assert snapshot["version"] == len(y)
    final = json_records(bootstrap, topics.metrics)[-1]
    assert (final["events"], final["labelled"]) == (len(y), len(y))


def test_random_sigkills_during_120k_events(kafka_bootstrap: str) -> None:
    # Input enough that every kill lands mid-run: a run learns tens of thousands of events a second,
    # and on a loaded machine the kill comes some tenths of a second after its target.
    n = 120_000
    topics, X, y = load(kafka_bootstrap, n, seed=31)
    watcher = EndWatcher(kafka_bootstrap, topics.predictions)
    rng = random.Random(7)
    for _ in range(4):
        process = start_component(kafka_bootstrap, topics, *EOS)
        target = watcher.end() + rng.randint(2_000, 9_000)
        wait_for(lambda p=process, t=target: watcher.end() >= t or p.poll() is not None, 240, 0.01)
        assert process.poll() is None, "the run finished before the kill"
        kill_hard(process)
    watcher.close()
    run_component(kafka_bootstrap, topics, *EOS, "--idle-timeout-s", "3")
    check_exactly_once(kafka_bootstrap, topics, X, y)


@pytest.mark.parametrize("point", ["after-produce", "after-offsets", "after-commit"])
def test_crash_at_exact_points_of_a_transaction(kafka_bootstrap: str, point: str) -> None:
    topics, X, y = load(kafka_bootstrap, 6_000, seed=32)
    # Transactions by count (polls of 200, a commit once 500 are in), not by time: the third and the
    # fifth commit of a run are then the same records on any machine.
    by_count = ("--commit-interval-ms", "600000", "--commit-every", "500")
    for on in (3, 5):
        env = dict(os.environ, STREAM_NEURON_TEST_CRASH_AT=point, STREAM_NEURON_TEST_CRASH_ON=str(on))
        done = subprocess.run(
            command(kafka_bootstrap, topics, *EOS, *by_count, "--idle-timeout-s", "3"),
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == -9, (
            f"expected the injected SIGKILL, got {done.returncode}: {done.stderr[-2000:]}"
        )
    run_component(kafka_bootstrap, topics, *EOS, "--idle-timeout-s", "3")
    check_exactly_once(kafka_bootstrap, topics, X, y)


def test_zombie_is_fenced_and_exits_non_zero(kafka_bootstrap: str) -> None:
    topics, X, y = load(kafka_bootstrap, 20_000, seed=33)
    first = start_component(kafka_bootstrap, topics, *EOS)
    watcher = EndWatcher(kafka_bootstrap, topics.predictions)
    wait_for(lambda: watcher.end() >= 5_000, 120, 0.01)
    second = start_component(kafka_bootstrap, topics, *EOS, "--idle-timeout-s", "4")
    second.wait_for_line("running model")  # by then it has fenced the first
    # The first instance learns it was fenced at its next transaction; new input makes sure it has one.
    X2, y2 = synthetic(2_000, 6, seed=34)
    send(
        kafka_bootstrap,
        topics.input,
        [
            {"id": f"e{20_000 + i}", "features": r.tolist(), "label": int(v)}
            for i, (r, v) in enumerate(zip(X2, y2, strict=True))
        ],
    )
    first_status, first_err = finish(first, 120)
    assert first_status == 3, first_err[-6000:]
    assert "fenced: another instance took over model" in first_err
    second_status, second_err = finish(second, 300)
    assert second_status == 0, second_err[-6000:]
    watcher.close()
    check_exactly_once(kafka_bootstrap, topics, np.vstack([X, X2]), np.concatenate([y, y2]))


@pytest.mark.parametrize("outage_s", [0.0, 12.0])
def test_broker_stopped_and_restarted_mid_run(tmp_path: Path, outage_s: float) -> None:
    """A quick restart, and an outage longer than the transaction timeout (calls time out, the
    producer is replaced, the run waits for the broker and carries on)."""
    # Its own broker, so the stop does not disturb the other tests' broker.
    with private_broker(tmp_path / "kafka", seed=int(outage_s * 1000) + os.getpid()) as (bootstrap, control):
        assert "already running" in control("start")  # start on a running broker is a no-op
        topics, X, y = load(bootstrap, 30_000, seed=35)
        # The idle clock must not count the outage: after a rollback, input is there to re-read.
        idle_s = "8" if outage_s else "30"
        process = start_component(
            bootstrap, topics, *EOS, "--idle-timeout-s", idle_s, "--transaction-timeout-s", "4"
        )
        try:
            watcher = EndWatcher(bootstrap, topics.predictions)
            wait_for(lambda: watcher.end() >= 8_000, 120, 0.01)
            produced_before_stop = watcher.end()
            watcher.close()
            control("stop")
            assert produced_before_stop < 25_000, "the run was nearly done before the broker stopped"
            time.sleep(outage_s)
            control("start")
        finally:
            status, stderr = finish(process, 600)
        assert status == 0, stderr[-6000:]
        if outage_s:
            assert "rolling back to the last committed snapshot" in stderr, stderr[-3000:]
        try:
            check_exactly_once(bootstrap, topics, X, y)
        except AssertionError as error:
            raise AssertionError(f"{error}\ncomponent log:\n{stderr[-6000:]}") from error
