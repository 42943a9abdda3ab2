"""Open and hashed features on the real broker, against river replaying the same events: SIGKILLs
under both guarantees, delayed labels, and scorer replicas that take a grown vocabulary."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections import Counter
from typing import Any

import numpy as np
import pytest
from river import compose, preprocessing

from stream_neuron import LogisticNeuron
from stream_neuron.contracts import ERROR_CLASS_HEADER
from stream_neuron.neuron.sparse_state import bitmap_index
from tests.component import (
    Topics,
    json_records,
    kill_mid_run,
    last_snapshot,
    raw_records,
    run_component,
    send,
    start,
    wait_for,
)
from tests.kafka_helpers import create_topic, unique_name
from tests.test_open_features_parity import open_stream, river_final, river_model, river_open, unruly_stream

pytestmark = pytest.mark.kafka
TOL = 1e-9


def sparse_weights(snapshot: dict[str, Any]) -> np.ndarray:
    """A sparse model's weights, from the snapshot's packed arrays."""
    weights, _, _ = LogisticNeuron.loaded_sparse_state(snapshot["sparse"], snapshot["n_features"])
    return weights


def stream(n: int, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]], np.ndarray]:
    events, y = open_stream(n, seed)
    sent = [
        {"id": f"e{i}", "features": x, "label": int(label)}
        for i, (x, label) in enumerate(zip(events, y, strict=True))
    ]
    return sent, events, y


@pytest.mark.parametrize("features", ["open", "hashed"])
def test_confident_mistakes_through_the_broker_equal_river_bit_for_bit(
    kafka_bootstrap: str, features: str
) -> None:
    """The events as a producer sends them, read by run's compiled reader (its own order of entries),
    at a rate where the descent amplifies every rounding difference: every weight river's exactly."""
    events, y = unruly_stream(3000, seed=5)
    sent = [
        {"id": f"e{i}", "features": x, "label": int(label)}
        for i, (x, label) in enumerate(zip(events, y, strict=True))
    ]
    topics = Topics.create(kafka_bootstrap)
    send(kafka_bootstrap, topics.input, sent)
    run_component(
        kafka_bootstrap, topics, "--features", features, "--learning-rate", "0.05", "--idle-timeout-s", "3"
    )
    final = river_model("logistic", {}, 0.05)
    if features == "open":
        river = river_open(final, standardize=False, drop_zeros=True)
    else:
        river = compose.Pipeline(preprocessing.FeatureHasher(n_features=2**20, seed=0), final)
    for x, label in zip(events, y, strict=True):
        river.learn_one(x, bool(label))
    snapshot = last_snapshot(kafka_bootstrap, topics)
    assert snapshot["version"] == len(sent)
    weights = sparse_weights(snapshot)
    keys = snapshot["feature_names"] if features == "open" else range(len(weights))
    ours = {k: w for k, w in zip(keys, weights.tolist(), strict=True) if w != 0.0 or features == "open"}
    for key in set(ours) | set(final.weights):
        assert ours.get(key, 0.0) == final.weights.get(key, 0.0), key
    assert snapshot["bias"] == final.intercept


@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
def test_open_features_survive_sigkills_and_equal_river(kafka_bootstrap: str, guarantee: str) -> None:
    # Enough input that each run is killed long before it could have read all of it: it learns some
    # 50,000 open events a second, and a kill lands a few tens of milliseconds after its target.
    sent, events, y = stream(120_000, seed=21)
    topics = Topics.create(kafka_bootstrap)
    send(kafka_bootstrap, topics.input, sent)
    flags = ("--features", "open", "--standardize", "--learning-rate", "0.05", "--guarantee", guarantee)
    flags += ("--commit-interval-ms", "100", "--poll-max-records", "200", "--snapshot-every", "500")
    kill_mid_run(kafka_bootstrap, topics, flags, 2, (800, 2_000), guarantee)
    run_component(kafka_bootstrap, topics, *flags, "--idle-timeout-s", "3")

    river = river_open(river_model("logistic", {}, 0.05), standardize=True, drop_zeros=False)
    expected = []
    for x, label in zip(events, y, strict=True):
        expected.append(river.predict_proba_one(x).get(True, 0.0))
        river.learn_one(x, bool(label))
    predictions = json_records(kafka_bootstrap, topics.predictions)
    counts = Counter(p["id"] for p in predictions)
    assert set(counts) == {e["id"] for e in sent}
    if guarantee == "exactly-once":
        assert max(counts.values()) == 1
    for p in predictions:  # a repeat (at-least-once) is the same prediction again
        assert p["probability"] == pytest.approx(expected[int(p["id"][1:])], abs=TOL)
    snapshot = last_snapshot(kafka_bootstrap, topics)
    final = river_final(river)
    assert snapshot["features"]["mode"] == "open" and snapshot["version"] == len(sent)
    weights = sparse_weights(snapshot)
    names = snapshot["feature_names"]
    assert set(names) == set(final.weights)
    for i, name in enumerate(names):
        assert weights[i] == pytest.approx(final.weights[name], abs=TOL)


@pytest.mark.parametrize("features", ["open", "hashed"])
def test_far_events_with_new_names_take_no_room_across_a_restart(kafka_bootstrap: str, features: str) -> None:
    """Events beyond --max-feature-abs, each with names never seen (a number and a category), among
    the good ones, before and after a restart: each is a dead letter for the bound, and none takes a
    name (open, with --max-features exactly the good events' names: one taken would refuse a good
    event) or a bucket (hashed: the buckets in use are river's hashing of the good events alone).
    Every good event is predicted as river predicts it on the good events alone."""
    good, events, y = stream(600, seed=24)
    sent: list[dict[str, Any]] = []
    for i, event in enumerate(good):
        sent.append(event)
        if i % 4 == 1:
            sent.append(
                {"id": f"far{i}", "features": {"n1": 50.0, f"new{i}": 1.0, "tag": f"t{i}"}, "label": 1}
            )
    far = {e["id"] for e in sent if e["id"].startswith("far")}
    if features == "open":
        river = river_open(river_model("logistic", {}, 0.05), standardize=False, drop_zeros=False)
    else:
        river = compose.Pipeline(
            preprocessing.FeatureHasher(2**16, seed=0), river_model("logistic", {}, 0.05)
        )
    expected, buckets = [], set()
    for x, label in zip(events, y, strict=True):
        expected.append(river.predict_proba_one(x).get(True, 0.0))
        river.learn_one(x, bool(label))
        if features == "hashed":
            buckets |= set(preprocessing.FeatureHasher(2**16, seed=0).transform_one(x))
    final = river_final(river)
    topics = Topics.create(kafka_bootstrap)
    send(kafka_bootstrap, topics.input, sent)
    flags = (
        "--features",
        features,
        "--learning-rate",
        "0.05",
        "--max-feature-abs",
        "10",
        "--hash-bits",
        "16",
    )
    if features == "open":
        flags += ("--max-features", str(len(final.weights)))
    run_component(kafka_bootstrap, topics, *flags, "--max-events", str(len(sent) // 2))
    run_component(kafka_bootstrap, topics, *flags, "--idle-timeout-s", "3")  # from the snapshot

    dead = raw_records(kafka_bootstrap, topics.dead_letters)
    assert sorted(json.loads(r.value or b"")["id"] for r in dead) == sorted(far)
    assert {dict(r.headers)[ERROR_CLASS_HEADER] for r in dead} == {b"FeatureOutOfRange"}
    predictions = json_records(kafka_bootstrap, topics.predictions)
    assert sorted(p["id"] for p in predictions) == sorted(e["id"] for e in good)
    for p in predictions:
        assert p["probability"] == pytest.approx(expected[int(p["id"][1:])], abs=TOL)
    snapshot = last_snapshot(kafka_bootstrap, topics)
    assert snapshot["version"] == len(good)
    weights = sparse_weights(snapshot)
    if features == "open":
        names = snapshot["feature_names"]
        assert set(names) == set(final.weights) and len(names) == len(final.weights)
        for i, name in enumerate(names):
            assert weights[i] == pytest.approx(final.weights[name], abs=TOL)
    else:
        in_use = bitmap_index({"bits": snapshot["features"]["in_use"]}, 2**16)
        assert set(in_use.tolist()) == buckets
        for bucket, weight in final.weights.items():
            assert weights[bucket] == pytest.approx(weight, abs=TOL)


def test_hashed_features_with_delayed_labels_equal_river(kafka_bootstrap: str) -> None:
    """Questions first, their answers later (some out of order): each prediction is
    river's at question time, each answer steps the model from the question's features."""
    sent, _, _ = stream(1_500, seed=22)
    questions = [{"id": e["id"], "features": e["features"]} for e in sent]
    answers = [{"id": e["id"], "label": e["label"]} for e in sent]
    rng = random.Random(5)
    order: list[dict[str, Any]] = []
    waiting: list[dict[str, Any]] = []
    for q, a in zip(questions, answers, strict=True):
        order.append(q)
        waiting.append(a)
        if len(waiting) > 20 or rng.random() < 0.3:
            order.append(waiting.pop(rng.randrange(len(waiting))))
    order += waiting
    topics = Topics.create(kafka_bootstrap)
    send(kafka_bootstrap, topics.input, order)
    flags = ("--features", "hashed", "--hash-bits", "16", "--hash-seed", "9", "--learning-rate", "0.05")
    run_component(kafka_bootstrap, topics, *flags, "--label-window", "100", "--idle-timeout-s", "3")

    river = compose.Pipeline(preprocessing.FeatureHasher(2**16, seed=9), river_model("logistic", {}, 0.05))
    features, expected = {}, {}
    for record in order:
        if "features" in record:
            features[record["id"]] = record["features"]
            expected[record["id"]] = river.predict_proba_one(record["features"]).get(True, 0.0)
        else:
            river.learn_one(features[record["id"]], bool(record["label"]))
    predictions = json_records(kafka_bootstrap, topics.predictions)
    assert len(predictions) == len(questions)
    for p in predictions:
        assert p["probability"] == pytest.approx(expected[p["id"]], abs=TOL)
    snapshot = last_snapshot(kafka_bootstrap, topics)
    final = river_final(river)
    learned = sparse_weights(snapshot)
    assert set(np.flatnonzero(learned).tolist()) <= set(final.weights)
    for bucket, weight in final.weights.items():
        assert learned[bucket] == pytest.approx(weight, abs=TOL)


def test_scorers_take_a_grown_vocabulary(kafka_bootstrap: str) -> None:
    sent, events, y = stream(800, seed=23)
    topics = Topics.create(kafka_bootstrap)
    flags = ("--features", "open", "--learning-rate", "0.05")
    send(kafka_bootstrap, topics.input, sent[:100])  # features n0..n2 and country only, so far
    run_component(kafka_bootstrap, topics, *flags, "--idle-timeout-s", "2")
    early = last_snapshot(kafka_bootstrap, topics)
    requests_topic = unique_name("requests")
    create_topic(kafka_bootstrap, requests_topic, 1)
    served = start(
        [
            *[sys.executable, "-m", "stream_neuron", "score", "--bootstrap-servers", kafka_bootstrap],
            *["--input-topic", requests_topic, "--predictions-topic", f"{requests_topic}-pred"],
            *["--model-topic", topics.model, "--model-name", topics.model_name, "--group-id", requests_topic],
            *["--dead-letter-topic", f"{requests_topic}-dlq"],  # stopped by the test
        ]
    )
    served.wait_for_line("serving partitions")
    send(kafka_bootstrap, topics.input, sent[100:])
    run_component(kafka_bootstrap, topics, *flags, "--idle-timeout-s", "2")
    grown = last_snapshot(kafka_bootstrap, topics)
    assert len(grown["feature_names"]) > len(early["feature_names"])
    served.wait_for_line(f"serving model version {grown['version']}", 60)
    requests = [{"id": f"r{i}", "features": e["features"]} for i, e in enumerate(sent[-50:])]
    send(kafka_bootstrap, requests_topic, requests)
    wait_for(lambda: len(json_records(kafka_bootstrap, f"{requests_topic}-pred")) >= 50, 60)
    served.terminate()
    served.finish(60)

    river = river_open(river_model("logistic", {}, 0.05), standardize=False, drop_zeros=False)
    for x, label in zip(events, y, strict=True):
        river.learn_one(x, bool(label))
    scored = {p["id"]: p for p in json_records(kafka_bootstrap, f"{requests_topic}-pred")}
    for request in requests:
        p = scored[request["id"]]
        assert p["model_version"] == grown["version"]
        assert p["probability"] == pytest.approx(
            river.predict_proba_one(request["features"]).get(True, 0.0), abs=TOL
        )


def one_hot_matrix(events: list[dict[str, Any]], names: list[str]) -> np.ndarray:
    """The events as a dense matrix over ``names`` (absent features 0, categories one-hot): written
    out here, independently of the component's encoder."""
    column = {name: j for j, name in enumerate(names)}
    X = np.zeros((len(events), len(names)))
    for i, x in enumerate(events):
        for name, value in x.items():
            if isinstance(value, (str, bool)):
                X[i, column[f"{name}_{value}"]] = 1.0
            else:
                X[i, column[name]] = float(value)
    return X


def test_fit_over_open_features_then_run_continues(kafka_bootstrap: str) -> None:
    """Batch descent over the first 600 events (every feature present in the whole batch, so the
    sparse step is the dense one over the one-hot matrix), then run learns the rest per event."""
    sent, events, y = stream(900, seed=24)
    topics = Topics.create(kafka_bootstrap)
    send(kafka_bootstrap, topics.input, sent)
    command = [
        sys.executable, "-m", "stream_neuron", "fit", "--bootstrap-servers", kafka_bootstrap,
        "--input-topic", topics.input, "--to-offset", "600", "--features", "open", "--epochs", "30",
        "--learning-rate", "0.5", "--model-topic", topics.model, "--metrics-topic", topics.metrics,
        "--model-name", topics.model_name,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    fitted = last_snapshot(kafka_bootstrap, topics)
    names = fitted["feature_names"]
    assert fitted["features"]["mode"] == "open" and fitted["version"] == 30
    dense = LogisticNeuron(len(names), learning_rate=0.5)
    X = one_hot_matrix(events, names)
    for _ in range(30):
        dense.learn_batch(X[:600], y[:600])
    np.testing.assert_allclose(sparse_weights(fitted), dense.weights, rtol=0, atol=1e-12)

    run_component(
        kafka_bootstrap, topics, "--features", "open", "--learning-rate", "0.5", "--idle-timeout-s", "2"
    )
    final = last_snapshot(kafka_bootstrap, topics)
    assert final["version"] == 30 + 300 and final["feature_names"][: len(names)] == names
    predictions = json_records(kafka_bootstrap, topics.predictions)
    assert [p["id"] for p in predictions] == [e["id"] for e in sent[600:]]
    grown = final["feature_names"]
    dense_all = LogisticNeuron(len(grown), learning_rate=0.5)
    dense_all.load_dict(
        dict(
            dense.to_dict(),
            n_features=len(grown),
            weights=[*dense.weights, *[0.0] * (len(grown) - len(names))],
        )
    )
    expected = dense_all.score_then_learn(one_hot_matrix(events[600:], grown), y[600:])
    np.testing.assert_allclose([p["probability"] for p in predictions], expected, rtol=0, atol=1e-12)


def hashed_matrix(events: list[dict[str, Any]], bits: int, seed: int) -> np.ndarray:
    """The events through river's own FeatureHasher, as a dense matrix over its 2^bits buckets."""
    hasher = preprocessing.FeatureHasher(n_features=2**bits, seed=seed)
    X = np.zeros((len(events), 2**bits))
    for i, x in enumerate(events):
        for bucket, value in hasher.transform_one(x).items():
            X[i, bucket] = value
    return X


def test_fit_over_hashed_features_then_a_scorer_serves_it(kafka_bootstrap: str) -> None:
    """Batch descent over hashed features (river's hasher, 2^8 buckets, a dense reference over them),
    then a `score` replica serves that model: every request's probability is the reference's."""
    sent, events, y = stream(700, seed=25)
    topics = Topics.create(kafka_bootstrap)
    send(kafka_bootstrap, topics.input, sent)
    hashing = ("--features", "hashed", "--hash-bits", "8", "--hash-seed", "11")
    command = [
        sys.executable, "-m", "stream_neuron", "fit", "--bootstrap-servers", kafka_bootstrap,
        "--input-topic", topics.input, "--to-offset", "600", *hashing, "--epochs", "20",
        "--learning-rate", "0.5", "--model-topic", topics.model, "--metrics-topic", topics.metrics,
        "--model-name", topics.model_name,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    fitted = last_snapshot(kafka_bootstrap, topics)
    assert fitted["features"]["mode"] == "hashed" and fitted["features"]["bits"] == 8
    X = hashed_matrix(events, 8, 11)
    dense = LogisticNeuron(256, learning_rate=0.5)
    for _ in range(20):
        dense.learn_batch(X[:600], y[:600])
    np.testing.assert_allclose(sparse_weights(fitted), dense.weights, rtol=0, atol=1e-12)

    requests_topic = unique_name("requests")
    create_topic(kafka_bootstrap, requests_topic, 1)
    served = start(
        [
            *[sys.executable, "-m", "stream_neuron", "score", "--bootstrap-servers", kafka_bootstrap],
            *["--input-topic", requests_topic, "--predictions-topic", f"{requests_topic}-pred"],
            *["--model-topic", topics.model, "--model-name", topics.model_name, "--group-id", requests_topic],
            *["--dead-letter-topic", f"{requests_topic}-dlq"],  # stopped by the test
        ]
    )
    served.wait_for_line(f"version {fitted['version']} (group", 60)
    served.wait_for_line("serving partitions", 60)
    requests = [{"id": f"r{i}", "features": e["features"]} for i, e in enumerate(sent[600:])]
    send(kafka_bootstrap, requests_topic, requests)
    wait_for(lambda: len(json_records(kafka_bootstrap, f"{requests_topic}-pred")) >= 100, 60)
    served.terminate()
    served.finish(60)
    scored = {p["id"]: p["probability"] for p in json_records(kafka_bootstrap, f"{requests_topic}-pred")}
    expected = 1.0 / (1.0 + np.exp(-(X[600:] @ dense.weights + dense.bias)))
    np.testing.assert_allclose([scored[r["id"]] for r in requests], expected, rtol=0, atol=1e-12)
