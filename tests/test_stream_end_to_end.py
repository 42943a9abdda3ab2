"""``stream-neuron run`` end to end against the real broker: river's figures, the perceptron, mini-batches,
unlabelled events, the output contracts and a client we did not write (kcat)."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
from river import compose, linear_model, optim, preprocessing

from stream_neuron import LogisticNeuron
from stream_neuron.contracts import Metrics, Prediction, Snapshot
from tests.component import (
    Topics,
    json_records,
    last_snapshot,
    phishing_events,
    run_component,
    send,
    weights,
)
from tests.datasets import phishing, river_phishing_correct, synthetic

pytestmark = pytest.mark.kafka


def river_standardized_weights(lr: float) -> tuple[np.ndarray, float]:
    names, rows, _, y = phishing()
    pipeline = compose.Pipeline(
        preprocessing.StandardScaler(), linear_model.LogisticRegression(optim.SGD(lr))
    )
    for x, label in zip(rows, y, strict=True):
        pipeline.learn_one(x, bool(label))
    model = pipeline["LogisticRegression"]
    return np.array([model.weights[k] for k in names]), model.intercept


def check_phishing_run(bootstrap: str, topics: Topics) -> None:
    predictions = json_records(bootstrap, topics.predictions)
    assert len(predictions) == 1250
    for record in predictions[:5]:
        Prediction.model_validate(record)
    assert [p["id"] for p in predictions] == [f"p{i}" for i in range(1250)]
    correct = sum(p["prediction"] == p["label"] for p in predictions)
    assert correct == river_phishing_correct(0.01)  # river's documented 89.28%
    assert all(p["prediction"] == int(p["probability"] > 0.5) for p in predictions)
    assert [p["model_version"] for p in predictions] == list(range(1250))

    metrics = json_records(bootstrap, topics.metrics)
    final = Metrics.model_validate(metrics[-1])
    assert final.cumulative.accuracy == pytest.approx(river_phishing_correct(0.01) / 1250, abs=1e-12)
    assert (final.events, final.labelled, final.dead_letters, final.model_version) == (1250, 1250, 0, 1250)
    assert final.lag == 0

    snapshot = Snapshot.model_validate(last_snapshot(bootstrap, topics))
    expected_w, expected_b = river_standardized_weights(0.01)
    np.testing.assert_allclose(snapshot.weights, expected_w, rtol=0, atol=1e-12)
    assert snapshot.bias == pytest.approx(expected_b, abs=1e-12)
    assert snapshot.offsets == {f"{topics.input}:0": 1250}
    assert snapshot.feature_names == list(phishing()[0])


def test_phishing_reproduces_river_progressive_accuracy(kafka_bootstrap: str) -> None:
    topics = Topics.create(kafka_bootstrap)
    send(kafka_bootstrap, topics.input, phishing_events())
    run_component(kafka_bootstrap, topics, "--standardize", "--learning-rate", "0.01", "--max-events", "1250")
    check_phishing_run(kafka_bootstrap, topics)


def test_events_fed_by_kcat(kafka_bootstrap: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    assert kcat is not None, "kcat is not installed: deploy/install-system-deps installs it"
    topics = Topics.create(kafka_bootstrap)
    lines = tmp_path / "events.txt"
    lines.write_text("".join(f"{e['id']}\t{json.dumps(e)}\n" for e in phishing_events()))
    subprocess.run(
        [kcat, "-b", kafka_bootstrap, "-t", topics.input, "-P", "-K", "\t", "-l", str(lines)],
        check=True,
        timeout=120,
    )
    run_component(
        kafka_bootstrap, topics, "--standardize", "--learning-rate", "0.01", "--idle-timeout-s", "3"
    )
    check_phishing_run(kafka_bootstrap, topics)
    # kcat reads our predictions back: every line is one prediction keyed by the event id.
    out = subprocess.run(
        [kcat, "-b", kafka_bootstrap, "-t", topics.predictions, "-C", "-e", "-q", "-f", "%k\n"],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout.split()
    assert out == [f"p{i}" for i in range(1250)]


def test_perceptron_end_to_end(kafka_bootstrap: str) -> None:
    names, rows, _, y = phishing()
    topics = Topics.create(kafka_bootstrap)
    send(kafka_bootstrap, topics.input, phishing_events())
    run_component(kafka_bootstrap, topics, "--model", "perceptron", "--max-events", "1250")
    river = linear_model.Perceptron()
    expected = []
    for x, label in zip(rows, y, strict=True):
        expected.append(1 if river.predict_one(x) else -1)
        river.learn_one(x, bool(label))
    predictions = json_records(kafka_bootstrap, topics.predictions)
    assert [p["prediction"] for p in predictions] == expected
    assert all(p["probability"] is None for p in predictions)
    snapshot = last_snapshot(kafka_bootstrap, topics)
    assert snapshot["kind"] == "perceptron"
    np.testing.assert_array_equal(weights(snapshot), [river.weights[k] for k in names])
    final = json_records(kafka_bootstrap, topics.metrics)[-1]
    assert final["cumulative"]["log_loss"] is None
    assert final["cumulative"]["accuracy"] == pytest.approx(
        np.mean(np.array(expected) == np.where(y == 1, 1, -1))
    )


def test_minibatch_equals_offline_learn_batch_and_unlabelled_change_nothing(kafka_bootstrap: str) -> None:
    X, y = synthetic(1000, 5, seed=21)
    unlabelled = np.random.default_rng(3).random(1000) < 0.2
    names = [f"f{i}" for i in range(5)]
    events = []
    for i, (row, label) in enumerate(zip(X, y, strict=True)):
        event = {"id": f"e{i}", "features": dict(zip(names, row.tolist(), strict=True))}
        if not unlabelled[i]:
            event["label"] = int(label)
        events.append(event)
    topics = Topics.create(kafka_bootstrap)
    send(kafka_bootstrap, topics.input, events)
    run_component(
        kafka_bootstrap, topics,
        "--mode", "minibatch", "--batch-size", "32", "--linger-ms", "600000",
        "--learning-rate", "0.2", "--max-events", "1000",
    )  # fmt: skip

    offline = LogisticNeuron(5, learning_rate=0.2)
    labelled_rows, labelled_y = X[~unlabelled], y[~unlabelled]
    expected_p = np.empty(len(labelled_y))
    for start in range(0, len(labelled_y), 32):
        expected_p[start : start + 32] = offline.predict_proba(labelled_rows[start : start + 32])
        offline.learn_batch(labelled_rows[start : start + 32], labelled_y[start : start + 32])
    snapshot = last_snapshot(kafka_bootstrap, topics)
    np.testing.assert_allclose(weights(snapshot), offline.weights, rtol=0, atol=1e-12)
    assert snapshot["version"] == offline.n_updates == -(-len(labelled_y) // 32)

    predictions = {p["id"]: p for p in json_records(kafka_bootstrap, topics.predictions)}
    assert len(predictions) == 1000
    got = np.array([predictions[f"e{i}"]["probability"] for i in np.flatnonzero(~unlabelled)])
    np.testing.assert_allclose(got, expected_p, rtol=0, atol=1e-12)
    assert all(predictions[f"e{i}"]["label"] is None for i in np.flatnonzero(unlabelled))


def test_unlabelled_events_are_scored_and_change_nothing(kafka_bootstrap: str) -> None:
    topics = Topics.create(kafka_bootstrap)
    send(kafka_bootstrap, topics.input, [{"features": [1.0, -2.0, 0.5], "label": None}] * 50)
    run_component(kafka_bootstrap, topics, "--max-events", "50")
    predictions = json_records(kafka_bootstrap, topics.predictions)
    assert [p["probability"] for p in predictions] == [0.5] * 50
    assert [p["source"]["offset"] for p in predictions] == list(range(50))
    assert all(p["id"] is None for p in predictions)
    snapshot = last_snapshot(kafka_bootstrap, topics)
    assert snapshot["version"] == 0 and snapshot["weights"] == [0.0, 0.0, 0.0]
    assert snapshot["feature_names"] is None and snapshot["n_features"] == 3


def test_sgd_run_equals_offline_score_then_learn(kafka_bootstrap: str) -> None:
    X, y = synthetic(3000, 8, seed=5)
    topics = Topics.create(kafka_bootstrap)
    send(
        kafka_bootstrap,
        topics.input,
        [{"features": row.tolist(), "label": int(label)} for row, label in zip(X, y, strict=True)],
    )
    run_component(
        kafka_bootstrap, topics, "--learning-rate", "0.05", "--schedule", "invscaling", "--max-events", "3000"
    )
    offline = LogisticNeuron(8, learning_rate=0.05, schedule="invscaling")
    expected = offline.score_then_learn(X, y)
    predictions = json_records(kafka_bootstrap, topics.predictions)
    np.testing.assert_allclose([p["probability"] for p in predictions], expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        weights(last_snapshot(kafka_bootstrap, topics)), offline.weights, rtol=0, atol=1e-12
    )
