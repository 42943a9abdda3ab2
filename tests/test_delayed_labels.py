"""Delayed labels without a broker: questions scored now, answers learned later, held to river's
``progressive_val_score(..., delay=k)``; the pending store's bounds; a snapshot that rebuilds it."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from river import compose, datasets, evaluate, linear_model, metrics, optim, preprocessing, stream

from stream_neuron import LogisticNeuron
from stream_neuron.config import Settings
from stream_neuron.contracts import ERROR_CLASS_HEADER, Metrics
from stream_neuron.pending import PendingStore, Question
from stream_neuron.processor import Processor
from stream_neuron.records import InputRecord
from stream_neuron.tools.check_river import compare, qa_order
from stream_neuron.tools.sources import questions_and_answers, river_dataset


def as_records(events: list[dict[str, Any]], topic: str = "in", start_ms: int = 1_000) -> list[InputRecord]:
    return [
        InputRecord(topic, 0, i, None, json.dumps(e).encode(), [], start_ms + i) for i, e in enumerate(events)
    ]


def run_through(processor: Processor, records: list[InputRecord], poll: int = 500) -> tuple[int, list[Any]]:
    """Predictions published and dead letters, polls of ``poll`` records."""
    predictions, dead = 0, []
    for start in range(0, len(records), poll):
        out = processor.process(records[start : start + poll], 1.0)
        predictions += len(out.predictions)
        dead += out.dead_letters
    return predictions, dead


@pytest.mark.parametrize("delay", [0, 1, 2, 10, 100, 1000])
def test_our_order_is_rivers_simulate_qa(delay: int) -> None:
    events = list(river_dataset("phishing"))[:300]
    ours = [
        ("a" if "features" not in e else "q", e["id"]) for e in questions_and_answers(iter(events), delay)
    ]
    pairs = [(e["features"], e["label"]) for e in events]
    rivers = [
        ("q" if y is None else "a", events[i]["id"])
        for i, _, y in stream.simulate_qa(pairs, moment=None, delay=delay)
    ]
    assert ours == rivers
    index, answers = qa_order(len(events), delay)
    assert [("a" if a else "q", events[i]["id"]) for i, a in zip(index, answers, strict=True)] == rivers


@pytest.mark.parametrize("delay", [0, 1, 7, 60, 500])
def test_the_processor_reproduces_river_under_delay(delay: int) -> None:
    """Phishing as questions and answers in one partition: one prediction per question, river's
    accuracy exactly, its weights to 1e-9 (the scaler learns an event when its answer arrives)."""
    records = as_records(list(questions_and_answers(river_dataset("phishing"), delay)))
    settings = Settings(standardize=True, learning_rate=0.01, label_window=5_000)
    processor = Processor(settings, 0.0)
    predictions, dead = run_through(processor, records)
    final = Metrics.model_validate_json(processor.close(2.0).metrics[-1].value or b"")

    pipeline = compose.Pipeline(
        preprocessing.StandardScaler(), linear_model.LogisticRegression(optim.SGD(0.01))
    )
    accuracy = evaluate.progressive_val_score(datasets.Phishing(), pipeline, metrics.Accuracy(), delay=delay)
    reference = pipeline["LogisticRegression"]
    assert processor.model is not None and processor.schema.names is not None
    river_weights = [reference.weights.get(name, 0.0) for name in processor.schema.names]
    assert (predictions, dead) == (1250, [])
    assert final.cumulative.accuracy == accuracy.get()
    assert final.labelled == 1250 and final.labels is not None
    assert (final.labels.pending, final.labels.answered, final.labels.expired) == (0, 1250, 0)
    np.testing.assert_allclose(processor.model.weights, river_weights, rtol=0, atol=1e-9)
    assert abs(processor.model.bias - reference.intercept) <= 1e-9


@pytest.mark.parametrize("delay", [0, 25])
def test_check_river_compares_a_delay(delay: int) -> None:
    [result] = compare("phishing", "logistic", 0.01, True, delay)
    assert result.agree, result


def test_minibatch_learns_the_answers_in_batches_of_their_arrival() -> None:
    """Mini-batch with delayed answers: each batch is the stored features of the next answers; an
    independent replay (numpy, learn_batch over the answers in order) gives the same weights."""
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(2_000, 4)), rng.integers(0, 2, 2_000)
    events = [{"id": f"q{i}", "features": X[i].tolist(), "label": int(y[i])} for i in range(len(y))]
    qa = list(questions_and_answers(iter(events), 37))
    settings = Settings(
        mode="minibatch", batch_size=16, linger_ms=600_000, learning_rate=0.1, label_window=100
    )
    processor = Processor(settings, 0.0)
    predictions, dead = run_through(processor, as_records(qa), poll=123)
    processor.close(2.0)
    order = [int(e["id"][1:]) for e in qa if "features" not in e]
    replay = LogisticNeuron(4, learning_rate=0.1)
    for start in range(0, len(order), 16):
        rows = order[start : start + 16]
        replay.learn_batch(X[rows], y[rows].astype(float))
    assert (predictions, dead) == (2_000, [])
    assert processor.model is not None
    np.testing.assert_allclose(processor.model.weights, replay.weights, rtol=0, atol=1e-12)
    assert processor.model.n_updates == replay.n_updates == 125


def dead_classes(dead: list[Any]) -> list[str]:
    return [dict(record.headers)[ERROR_CLASS_HEADER].decode() for record in dead]


def test_the_window_count_expires_the_oldest_and_their_answers_are_dead_letters() -> None:
    processor = Processor(Settings(label_window=3), 0.0)
    questions = [{"id": f"q{i}", "features": [float(i)]} for i in range(5)]
    answers = [{"id": f"q{i}", "label": 1} for i in range(5)]
    predictions, dead = run_through(processor, as_records(questions + answers))
    assert predictions == 5
    assert dead_classes(dead) == ["UnmatchedAnswer", "UnmatchedAnswer"]  # q0, q1 expired
    assert processor.model is not None and processor.model.n_updates == 3
    assert processor.pending is not None
    assert processor.pending.metrics() == {
        "pending": 0, "answered": 3, "expired": 2, "unmatched_answers": 2,
        "duplicate_answers": 0, "duplicate_questions": 0,
    }  # fmt: skip


def test_the_window_time_expires_questions_by_record_time() -> None:
    processor = Processor(Settings(label_window=1_000, label_window_s=10), 0.0)
    records = [
        InputRecord("in", 0, 0, None, b'{"id": "old", "features": [1.0]}', [], 0),
        InputRecord("in", 0, 1, None, b'{"id": "new", "features": [2.0]}', [], 9_000),
        InputRecord("in", 0, 2, None, b'{"id": "x", "features": [3.0], "label": 0}', [], 10_500),
        InputRecord("in", 0, 3, None, b'{"id": "old", "label": 1}', [], 10_600),
        InputRecord("in", 0, 4, None, b'{"id": "new", "label": 1}', [], 10_700),
    ]
    _, dead = run_through(processor, records)
    assert dead_classes(dead) == ["UnmatchedAnswer"]
    assert processor.pending is not None and processor.pending.counts.expired == 1
    assert processor.model is not None and processor.model.n_updates == 2  # x at once, then new


def test_duplicates_are_counted_and_never_touch_the_model() -> None:
    processor = Processor(Settings(label_window=100), 0.0)
    events = [
        {"id": "a", "features": [1.0]},
        {"id": "a", "features": [5.0]},  # same id while pending: scored, not kept
        {"id": "a", "label": 1},
        {"id": "a", "label": 0},  # answered already
        {"id": "nobody", "label": 1},
        {"features": [2.0]},  # no id: scored, cannot be answered
    ]
    predictions, dead = run_through(processor, as_records(events))
    assert predictions == 3
    assert dead_classes(dead) == ["DuplicateAnswer", "UnmatchedAnswer"]
    assert processor.model is not None and processor.model.n_updates == 1
    replay = LogisticNeuron(1)
    replay.score_then_learn(np.array([[1.0]]), np.array([1.0]))  # the first question's features
    np.testing.assert_array_equal(processor.model.weights, replay.weights)
    assert processor.pending is not None
    assert processor.pending.metrics() == {
        "pending": 0, "answered": 1, "expired": 0, "unmatched_answers": 1,
        "duplicate_answers": 1, "duplicate_questions": 1,
    }  # fmt: skip


def test_an_answer_is_not_an_event_without_delayed_labels() -> None:
    processor = Processor(Settings(), 0.0)
    _, dead = run_through(processor, as_records([{"id": "a", "features": [1.0]}, {"id": "a", "label": 1}]))
    assert dead_classes(dead) == ["MissingFeatures"]


@pytest.mark.parametrize("mode", ["sgd", "minibatch"])
def test_a_snapshot_rebuilds_the_pending_questions_and_continues_exactly(mode: str) -> None:
    """Stop mid-stream with questions pending; a new processor restored from the snapshot reads the
    questions back from the input records (not from the snapshot) and ends where an uninterrupted one
    does: weights, metrics and label counts."""
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(3_000, 3)), rng.integers(0, 2, 3_000)
    events = [{"id": f"q{i}", "features": X[i].tolist(), "label": int(y[i])} for i in range(len(y))]
    records = as_records(list(questions_and_answers(iter(events), 250)))
    settings = Settings(
        standardize=True, label_window=200, mode=mode, batch_size=8, linger_ms=600_000, learning_rate=0.05
    )
    whole = Processor(settings, 0.0)
    run_through(whole, records)
    half = Processor(settings, 0.0)
    run_through(half, records[:2_600])
    snapshot = json.loads(half.snapshot_record().value or b"")  # type: ignore[union-attr]
    assert len(json.dumps(snapshot["questions"])) < 200 * 30  # offsets and scores, not the features
    resumed = Processor.restored(settings, snapshot, 0.0, lambda positions: None)
    ranges = resumed.questions_to_read()
    wanted = [r for r in records if ranges[("in", 0)][0] <= r.offset < ranges[("in", 0)][1]]
    assert resumed.rebuild_questions(wanted) == 0
    assert resumed.pending is not None and half.pending is not None
    assert list(resumed.pending.questions) == list(half.pending.questions)
    run_through(resumed, records[2_600:])
    assert resumed.model is not None and whole.model is not None
    np.testing.assert_array_equal(resumed.model.weights, whole.model.weights)
    assert resumed.metrics.state() == whole.metrics.state()
    assert resumed.pending.metrics() == whole.pending.metrics()  # type: ignore[union-attr]


def test_the_store_state_round_trips_in_order() -> None:
    store = PendingStore(10, 1_000_000)
    for i, (topic, partition) in enumerate([("in", 1), ("labels", 0), ("in", 0), ("in", 1)]):
        store.ask(f"q{i}", Question(topic, partition, 100 + i, i, np.zeros(2), 0.5 * i))
    wanted = PendingStore.wanted(json.loads(json.dumps(store.state())))
    assert wanted == [("in", 1, 100, 0.0), ("labels", 0, 101, 0.5), ("in", 0, 102, 1.0), ("in", 1, 103, 1.5)]
