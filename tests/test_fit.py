"""``stream-neuron fit`` against the real broker: a range of a topic fitted, then ``run`` over the rest
(each event learned once, checked against a plain numpy replay of both descents), the learning-rate
lesson on the metrics topic and in a picture, a file history, bad records, ranges by time, and the
refusals an operator meets (an existing model, a history over the memory limit)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kafka import KafkaProducer

from stream_neuron import LogisticNeuron
from stream_neuron.neuron.descent import descend
from stream_neuron.tools.curve import learning_curve
from tests.component import (
    Topics,
    json_records,
    last_snapshot,
    phishing_events,
    run_component,
    send,
    synthetic_events,
)
from tests.datasets import phishing
from tests.kafka_helpers import client

pytestmark = pytest.mark.kafka


def fit(bootstrap: str, topics: Topics, *extra: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable, "-m", "stream_neuron", "fit", "--bootstrap-servers", bootstrap,
        "--model-topic", topics.model, "--metrics-topic", topics.metrics, "--model-name", topics.model_name,
        *extra,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == expect, f"fit exited {done.returncode}:\n{done.stderr[-4000:]}"
    return done


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + np.exp(-z))


def replay(
    X: np.ndarray, y: np.ndarray, n_fit: int, lr: float, epochs: int
) -> tuple[list[float], np.ndarray]:
    """The lecture's two descents written out: batch GD on the first ``n_fit`` rows standardised by their
    own mean and variance, then per-event SGD on the rest with those statistics updated event by event
    (each event scored with the statistics before it, learned with those after it), each step's
    gradient river's ``learn_one`` takes (``optim.losses.Log``: exactly 1 where the model is more
    than 18 confidently wrong). Returns the probabilities of the rest and the final weights (bias
    last)."""
    from river import optim

    log_loss = optim.losses.Log()
    history = X[:n_fit]
    mean, var = history.mean(axis=0), history.var(axis=0)
    std = np.sqrt(var)
    Xs = (history - mean) / std
    w, b = np.zeros(X.shape[1]), 0.0
    for _ in range(epochs):
        g = 1.0 / (1.0 + np.exp(-(Xs @ w + b))) - y[:n_fit]
        w, b = w - lr * (Xs.T @ g) / n_fit, b - lr * g.mean()
    count, probabilities = n_fit, []
    for x, label in zip(X[n_fit:], y[n_fit:], strict=True):
        probabilities.append(sigmoid((x - mean) / np.sqrt(var) @ w + b))
        count += 1
        new_mean = mean + (x - mean) / count
        var = var + ((x - mean) * (x - new_mean) - var) / count
        mean = new_mean
        s = (x - mean) / np.sqrt(var)
        g = log_loss.gradient(bool(label), float(s @ w + b))
        w, b = w - lr * g * s, b - lr * g
    return probabilities, np.append(w, b)


def test_fit_a_range_then_run_learns_each_later_event_once(kafka_bootstrap: str) -> None:
    events = phishing_events()
    _, _, X, y = phishing()
    topics = Topics.create(kafka_bootstrap)
    send(kafka_bootstrap, topics.input, events)
    n_fit, lr, epochs = 1000, 0.5, 40
    done = fit(
        kafka_bootstrap, topics, "--input-topic", topics.input, "--to-offset", str(n_fit), "--standardize",
        "--learning-rate", str(lr), "--epochs", str(epochs),
    )  # fmt: skip
    assert f"read {n_fit:,} records: {n_fit:,} labelled events of 9 features" in done.stderr
    fitted = last_snapshot(kafka_bootstrap, topics)
    assert fitted["offsets"] == {f"{topics.input}:0": n_fit} and fitted["version"] == epochs
    assert fitted["scaler_state"]["count"] == n_fit
    expected, final = replay(X, y, n_fit, lr, epochs)

    run_component(
        kafka_bootstrap, topics, "--standardize", "--learning-rate", str(lr), "--idle-timeout-s", "2"
    )
    predictions = json_records(kafka_bootstrap, topics.predictions)
    counts = Counter(p["id"] for p in predictions)
    assert set(counts) == {f"p{i}" for i in range(n_fit, len(events))} and max(counts.values()) == 1
    ordered = sorted(predictions, key=lambda p: int(p["id"][1:]))
    np.testing.assert_allclose([p["probability"] for p in ordered], expected, rtol=0, atol=1e-9)
    snapshot = last_snapshot(kafka_bootstrap, topics)
    np.testing.assert_allclose([*snapshot["weights"], snapshot["bias"]], final, rtol=0, atol=1e-9)
    assert snapshot["version"] == epochs + len(events) - n_fit
    assert snapshot["offsets"] == {f"{topics.input}:0": len(events)}


def test_learning_rates_are_compared_on_the_metrics_topic_and_drawn(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    events, X, y = synthetic_events(2000, 4, seed=21)
    X = X * 30.0  # unscaled, so that a large rate overshoots
    for event, row in zip(events, X, strict=True):
        event["features"] = row.tolist()
    topics = Topics.create(kafka_bootstrap)
    send(kafka_bootstrap, topics.input, events)
    picture = tmp_path / "lr.png"
    done = fit(
        kafka_bootstrap, topics, "--input-topic", topics.input, "--learning-rate", "0.00001,0.001,10",
        "--epochs", "30", "--plot", str(picture),
    )  # fmt: skip
    costs = {}
    for rate in (0.00001, 0.001, 10.0):
        costs[rate] = descend(LogisticNeuron(4, learning_rate=rate), X, y, 30)
    assert costs[10.0].diverged and not costs[0.001].diverged
    assert "learning rate 10: 30 epochs, diverged" in done.stderr
    assert "best learning rate: 0.001" in done.stderr
    assert picture.read_bytes()[:4] == b"\x89PNG"

    records = json_records(kafka_bootstrap, topics.metrics)
    assert [r["epoch"] for r in records] == list(range(1, 31))
    assert {r["learning_rate"] for r in records} == {0.001}
    np.testing.assert_allclose([r["cumulative"]["log_loss"] for r in records], costs[0.001].costs, atol=1e-12)
    curve = learning_curve(records)  # what `monitor` plots
    assert curve.events == [2000 * epoch for epoch in range(1, 31)]
    snapshot = last_snapshot(kafka_bootstrap, topics)
    assert snapshot["learning_rate"] == 0.001 and snapshot["scaler_state"] is None


def test_a_file_history_counts_its_bad_rows_and_an_existing_model_is_kept(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    events, X, y = synthetic_events(300, 3, seed=22)
    lines = [
        json.dumps({"features": dict(zip("abc", e["features"], strict=True)), "label": e["label"]})
        for e in events
    ]
    lines[10:10] = ["{not json", json.dumps({"features": {"a": 1, "b": 2, "c": 3}, "label": 7})]
    lines.append(json.dumps({"features": {"a": 1, "b": 2, "c": 3}}))  # unlabelled: skipped
    history = tmp_path / "history.jsonl"
    history.write_text("\n".join(lines) + "\n")
    topics = Topics.create(kafka_bootstrap)
    done = fit(kafka_bootstrap, topics, "--file", str(history), "--learning-rate", "0.3", "--epochs", "25")
    assert "read 303 lines: 300 labelled events of 3 features, 1 unlabelled, 2 bad" in done.stderr
    assert "; e.g. line 11: the value is not valid JSON: " in done.stderr  # run's reason, after its line
    model = LogisticNeuron(3, learning_rate=0.3)
    descend(model, X, y, 25)
    snapshot = last_snapshot(kafka_bootstrap, topics)
    np.testing.assert_allclose(snapshot["weights"], model.weights, rtol=0, atol=1e-12)
    assert snapshot["feature_names"] == ["a", "b", "c"] and snapshot["offsets"] == {}

    again = fit(kafka_bootstrap, topics, "--file", str(history), expect=1)
    assert again.stderr.count("\n") == 1 and "--replace" in again.stderr
    fit(kafka_bootstrap, topics, "--file", str(history), "--epochs", "3", "--replace")
    assert last_snapshot(kafka_bootstrap, topics)["version"] == 3


def test_bad_records_on_the_topic_are_counted_never_learned(kafka_bootstrap: str) -> None:
    events, X, y = synthetic_events(500, 3, seed=23)
    topics = Topics.create(kafka_bootstrap)
    values: list[Any] = list(events)
    values[100:100] = [b"\xff\xfe", {"features": [1.0, 2.0], "label": 1}, {"features": [1, 2, 3], "label": 2}]
    send(kafka_bootstrap, topics.input, values)
    done = fit(
        kafka_bootstrap, topics, "--input-topic", topics.input, "--learning-rate", "0.2", "--epochs", "10"
    )
    assert "read 503 records: 500 labelled events of 3 features, 0 unlabelled, 3 bad" in done.stderr
    model = LogisticNeuron(3, learning_rate=0.2)
    descend(model, X, y, 10)
    np.testing.assert_allclose(last_snapshot(kafka_bootstrap, topics)["weights"], model.weights, atol=1e-12)
    assert last_snapshot(kafka_bootstrap, topics)["metrics_state"]["dead_letters"] == 3


def test_a_time_range_and_the_memory_limit(kafka_bootstrap: str) -> None:
    events, X, y = synthetic_events(400, 3, seed=24)
    topics = Topics.create(kafka_bootstrap)
    start = int(time.time() * 1000) - 400_000
    producer = KafkaProducer(**client(kafka_bootstrap), acks="all")
    for i, event in enumerate(events):  # one event a second
        producer.send(topics.input, json.dumps(event).encode(), timestamp_ms=start + i * 1000)
    producer.flush()
    producer.close()
    fit(
        kafka_bootstrap, topics, "--input-topic", topics.input, "--from-time", str(start + 100_000),
        "--to-time", str(start + 300_000), "--epochs", "5",
    )  # fmt: skip
    model = LogisticNeuron(3, learning_rate=0.1)
    descend(model, X[100:300], y[100:300], 5)
    snapshot = last_snapshot(kafka_bootstrap, topics)
    np.testing.assert_allclose(snapshot["weights"], model.weights, rtol=0, atol=1e-12)
    assert snapshot["offsets"] == {f"{topics.input}:0": 300}

    limit = ("--max-memory-mb", "0.005")  # 163 rows of 3 features and a label
    refused = fit(kafka_bootstrap, topics, "--input-topic", topics.input, *limit, "--replace", expect=1)
    assert refused.stderr.count("\n") == 1 and "--max-memory-mb 0.005" in refused.stderr


def test_keep_all_hands_every_rate_to_run_as_candidates(kafka_bootstrap: str) -> None:
    events = phishing_events()
    _, _, X, y = phishing()
    topics = Topics.create(kafka_bootstrap)
    send(kafka_bootstrap, topics.input, events)
    n_fit, rates, epochs = 1000, (0.05, 0.5, 5.0), 40
    rate_flag = ",".join(map(str, rates))
    done = fit(
        kafka_bootstrap, topics, "--input-topic", topics.input, "--to-offset", str(n_fit), "--standardize",
        "--learning-rate", rate_flag, "--epochs", str(epochs), "--keep-all",
    )  # fmt: skip
    fitted = last_snapshot(kafka_bootstrap, topics)
    assert len(fitted["candidates"]) == 3
    best = next(r for r in rates if f"best learning rate: {r:g}" in done.stderr)
    assert fitted["champion"]["champion"] == rates.index(best) and fitted["learning_rate"] == best

    run_component(
        kafka_bootstrap, topics, "--standardize", "--learning-rate", rate_flag, "--champion-window", "50",
        "--idle-timeout-s", "2",
    )  # fmt: skip
    replays = {rate: replay(X, y, n_fit, rate, epochs) for rate in rates}
    snapshot = last_snapshot(kafka_bootstrap, topics)
    for rate, candidate in zip(rates, snapshot["candidates"], strict=True):
        model = candidate["model"]
        np.testing.assert_allclose([*model["weights"], model["bias"]], replays[rate][1], rtol=0, atol=1e-9)
    predictions = sorted(json_records(kafka_bootstrap, topics.predictions), key=lambda p: int(p["id"][1:]))
    assert len(predictions) == len(events) - n_fit
    assert predictions[0]["learning_rate"] == best  # the fit's best is the first champion
    for i, p in enumerate(predictions):
        assert p["probability"] == pytest.approx(replays[p["learning_rate"]][0][i], abs=1e-9)


def test_a_penalised_fit_is_the_penalised_descent_and_run_keeps_its_rule(kafka_bootstrap: str) -> None:
    events = phishing_events()
    _, _, X, y = phishing()
    topics = Topics.create(kafka_bootstrap)
    send(kafka_bootstrap, topics.input, events)
    fit(
        kafka_bootstrap, topics, "--input-topic", topics.input, "--to-offset", "1000", "--l2", "0.01",
        "--optimizer", "adam", "--learning-rate", "0.05", "--epochs", "30",
    )  # fmt: skip
    model = LogisticNeuron(9, learning_rate=0.05, l2=0.01, optimizer="adam")
    descend(model, X[:1000], y[:1000], 30)
    fitted = last_snapshot(kafka_bootstrap, topics)
    np.testing.assert_allclose(fitted["weights"], model.weights, rtol=0, atol=1e-12)
    assert fitted["schedule_state"]["rule"] == {"optimizer": "adam", "l2": 0.01, "l1": 0.0}
    run_component(
        kafka_bootstrap, topics, "--l2", "0.01", "--optimizer", "adam", "--learning-rate", "0.05",
        "--idle-timeout-s", "2",
    )  # fmt: skip
    model.score_then_learn(X[1000:], y[1000:])
    np.testing.assert_allclose(last_snapshot(kafka_bootstrap, topics)["weights"], model.weights, atol=1e-12)
