"""Delayed labels against the real broker: river's delayed progressive validation reproduced by
``run``, answers on a labels topic after a restart, and hard kills with questions pending. Every check
compares with an independent replay (river, or the numpy neuron over the questions and answers)."""

from __future__ import annotations

import random
import signal
import subprocess
from collections import Counter
from typing import Any

import numpy as np
import pytest
from river import compose, datasets, evaluate, linear_model, metrics, optim, preprocessing

from stream_neuron import LogisticNeuron
from tests.component import (
    Topics,
    json_records,
    last_snapshot,
    run_component,
    send,
    start_component,
    tool_command,
    weights,
)
from tests.kafka_helpers import create_topic, unique_name

pytestmark = pytest.mark.kafka


def produce(bootstrap: str, topic: str, *flags: str) -> None:
    done = subprocess.run(
        tool_command("produce", "--bootstrap-servers", bootstrap, "--topic", topic, *flags),
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.parametrize("delay", [0, 60])
def test_run_reproduces_rivers_delayed_progressive_validation(kafka_bootstrap: str, delay: int) -> None:
    topics = Topics.create(kafka_bootstrap)
    produce(kafka_bootstrap, topics.input, "--dataset", "phishing", "--label-delay", str(delay))
    run_component(
        kafka_bootstrap, topics, "--standardize", "--learning-rate", "0.01", "--label-window", "2000",
        "--idle-timeout-s", "3",
    )  # fmt: skip
    pipeline = compose.Pipeline(
        preprocessing.StandardScaler(), linear_model.LogisticRegression(optim.SGD(0.01))
    )
    accuracy = evaluate.progressive_val_score(datasets.Phishing(), pipeline, metrics.Accuracy(), delay=delay)
    reference = pipeline["LogisticRegression"]

    predictions = json_records(kafka_bootstrap, topics.predictions)
    assert len(predictions) == 1250 and len({p["id"] for p in predictions}) == 1250
    assert all(p["label"] is None for p in predictions)  # scored as questions
    final = json_records(kafka_bootstrap, topics.metrics)[-1]
    assert final["cumulative"]["accuracy"] == accuracy.get()
    assert final["labels"]["answered"] == final["labelled"] == 1250
    snapshot = last_snapshot(kafka_bootstrap, topics)
    names = snapshot["feature_names"]
    np.testing.assert_allclose(
        weights(snapshot), [reference.weights.get(n, 0.0) for n in names], rtol=0, atol=1e-9
    )
    assert abs(snapshot["bias"] - reference.intercept) <= 1e-9


def test_answers_on_a_labels_topic_after_a_restart(kafka_bootstrap: str) -> None:
    """All questions first: the run stops with them pending. The answers then come on a labels topic
    in another order; the next run reads the questions back from the input topic (not the snapshot)
    and learns each answer once, as a numpy replay in answer order does."""
    topics = Topics.create(kafka_bootstrap)
    labels = unique_name("sn-labels")
    create_topic(kafka_bootstrap, labels, 1)
    rng = np.random.default_rng(11)
    X, y = rng.normal(size=(3_000, 5)), rng.integers(0, 2, 3_000)
    send(kafka_bootstrap, topics.input, [{"id": f"q{i}", "features": X[i].tolist()} for i in range(3_000)])
    flags = (
        "--label-window",
        "5000",
        "--labels-topic",
        labels,
        "--learning-rate",
        "0.05",
        "--idle-timeout-s",
        "3",
    )
    run_component(kafka_bootstrap, topics, *flags)
    first = last_snapshot(kafka_bootstrap, topics)
    assert first["version"] == 0 and first["questions"]["counts"]["answered"] == 0
    order = rng.permutation(3_000)
    send(kafka_bootstrap, labels, [{"id": f"q{i}", "label": int(y[i])} for i in order])
    done = run_component(kafka_bootstrap, topics, *flags)
    assert "rebuilt 3000 pending questions" in done.stderr

    snapshot = last_snapshot(kafka_bootstrap, topics)
    final = json_records(kafka_bootstrap, topics.metrics)[-1]
    assert final["labels"]["answered"] == 3_000 and final["labels"]["pending"] == 0
    assert snapshot["version"] == 3_000 and snapshot["offsets"][f"{labels}:0"] == 3_000
    replayed = LogisticNeuron(5, learning_rate=0.05)
    replayed.score_then_learn(X[order], y[order].astype(float))
    np.testing.assert_allclose(weights(snapshot), replayed.weights, rtol=0, atol=1e-12)
    predictions = json_records(kafka_bootstrap, topics.predictions)
    assert len(predictions) == 3_000 and {p["probability"] for p in predictions} == {0.5}


def qa_stream(n: int, d: int, delay: int, seed: int) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray]:
    from stream_neuron.tools.sources import questions_and_answers

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (X @ rng.normal(size=d) + rng.normal(size=n) > 0).astype(int)
    events = [{"id": f"e{i}", "features": X[i].tolist(), "label": int(y[i])} for i in range(n)]
    return list(questions_and_answers(iter(events), delay)), X, y


def replay(qa: list[dict[str, Any]], X: np.ndarray, y: np.ndarray) -> tuple[LogisticNeuron, dict[str, float]]:
    """The numpy neuron over the same questions and answers: each question's probability, final model."""
    index = np.array([int(e["id"][1:]) for e in qa])
    answers = np.array(["features" not in e for e in qa])
    model = LogisticNeuron(X.shape[1], learning_rate=0.05)
    outputs = model.score_then_learn(X[index], np.where(answers, y[index], np.nan))
    return model, {f"e{i}": p for i, p, a in zip(index, outputs, answers, strict=True) if not a}


@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
def test_kills_with_questions_pending_learn_every_answer_once(
    kafka_bootstrap: str, guarantee: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    qa, X, y = qa_stream(20_000, 4, 700, seed=21)
    topics = Topics.create(kafka_bootstrap)
    send(kafka_bootstrap, topics.input, qa)
    flags = (
        "--guarantee", guarantee, "--learning-rate", "0.05", "--label-window", "1000",
        "--poll-max-records", "200", "--commit-interval-ms", "50", "--snapshot-every", "500",
    )  # fmt: skip
    rng = random.Random(5)
    for _ in range(3):
        # A crash point, not a timed kill: mid-stream however fast the Kafka client under test is
        # (200-record polls: 2,000 to 7,000 records after each start, 21,000 at most of 40,000).
        monkeypatch.setenv("STREAM_NEURON_TEST_CRASH_AT", "after-publish")
        monkeypatch.setenv("STREAM_NEURON_TEST_CRASH_ON", str(rng.randint(10, 35)))
        process = start_component(kafka_bootstrap, topics, *flags)
        assert process.finish(240)[0] == -signal.SIGKILL, "the run ended before its crash point"
    monkeypatch.delenv("STREAM_NEURON_TEST_CRASH_AT")
    monkeypatch.delenv("STREAM_NEURON_TEST_CRASH_ON")
    done = run_component(kafka_bootstrap, topics, *flags, "--idle-timeout-s", "3")
    assert "rebuilt" in done.stderr

    model, expected = replay(qa, X, y)
    snapshot = last_snapshot(kafka_bootstrap, topics)
    assert snapshot["version"] == 20_000
    np.testing.assert_allclose(weights(snapshot), model.weights, rtol=0, atol=1e-12)
    predictions = json_records(kafka_bootstrap, topics.predictions)
    counts = Counter(p["id"] for p in predictions)
    assert set(counts) == set(expected)
    if guarantee == "exactly-once":
        assert max(counts.values()) == 1
    assert max(abs(p["probability"] - expected[p["id"]]) for p in predictions) <= 1e-12
    final = json_records(kafka_bootstrap, topics.metrics)[-1]
    assert final["labels"]["answered"] == 20_000 and final["labels"]["expired"] == 0
