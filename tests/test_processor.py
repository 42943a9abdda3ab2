"""The pure processing step, without a broker: schema fixing, positional events, metrics windows."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from stream_neuron.config import Settings
from stream_neuron.contracts import ERROR_CLASS_HEADER, ERROR_REASON_HEADER, Metrics, Prediction
from stream_neuron.neuron import MODEL_KINDS, LinearNeuron
from stream_neuron.neuron.losses import Loss
from stream_neuron.processor import Processor
from stream_neuron.records import InputRecord


def records(*values: object, start: int = 0) -> list[InputRecord]:
    return [InputRecord("in", 0, start + i, None, json.dumps(v).encode(), []) for i, v in enumerate(values)]


def test_positional_schema_from_the_first_event_refuses_names() -> None:
    processor = Processor(Settings(), 0.0)
    out = processor.process(
        records({"features": [1, 2], "label": 1}, {"features": {"a": 1, "b": 2}, "label": 0}), 1.0
    )
    assert len(out.predictions) == 1 and len(out.dead_letters) == 1
    assert dict(out.dead_letters[0].headers)[ERROR_CLASS_HEADER] == b"NamedFeaturesUnexpected"


def test_named_schema_accepts_arrays_by_position_and_any_key_order() -> None:
    processor = Processor(Settings(feature_names=("a", "b")), 0.0)
    out = processor.process(
        records(
            {"features": {"b": 2.0, "a": 1.0}, "label": 1},
            {"features": [1.0, 2.0], "label": 1},
            {"features": {"a": 1}},
        ),
        1.0,
    )
    predictions = [Prediction.model_validate_json(r.value or b"") for r in out.predictions]
    assert predictions[0].score == 0.0 and predictions[1].model_version == 1
    assert len(out.dead_letters) == 1  # {"a": 1} misses "b"
    assert processor.model is not None and processor.model.n_updates == 2


def test_metrics_close_exactly_every_n_events_inside_one_batch() -> None:
    processor = Processor(Settings(metrics_every=3), 0.0)
    out = processor.process(records(*({"features": [float(i)], "label": i % 2} for i in range(10))), 1.0)
    windows = [Metrics.model_validate_json(r.value or b"") for r in out.metrics]
    assert [w.events for w in windows] == [3, 6, 9]
    assert all(w.window.events == 3 for w in windows)
    closing = processor.close(2.0)
    assert Metrics.model_validate_json(closing.metrics[-1].value or b"").window.events == 1


def test_perceptron_labels_and_outputs() -> None:
    processor = Processor(Settings(model="perceptron"), 0.0)
    out = processor.process(
        records(
            {"features": [1.0], "label": -1}, {"features": [1.0], "label": 1}, {"features": [1.0], "label": 2}
        ),
        1.0,
    )
    predictions = [json.loads(r.value or b"") for r in out.predictions]
    assert [p["prediction"] for p in predictions] == [-1, -1]
    assert [p["probability"] for p in predictions] == [None, None]
    assert len(out.dead_letters) == 1


def test_an_event_with_a_bad_label_does_not_fix_the_schema() -> None:
    processor = Processor(Settings(), 0.0)
    out = processor.process(
        records({"features": {"x": 1.0}, "label": 5}, {"features": {"a": 1.0, "b": 2.0}, "label": 1}), 1.0
    )
    assert len(out.dead_letters) == 1 and len(out.predictions) == 1
    assert processor.schema.names == ("a", "b")


def test_snapshot_round_trip_through_a_new_processor_continues_exactly() -> None:
    settings = Settings(mode="minibatch", batch_size=4, linger_ms=10_000, standardize=True)
    first = Processor(settings, 0.0)
    events = [{"features": {"a": float(i), "b": float(i % 3)}, "label": i % 2} for i in range(10)]
    first.process(records(*events[:6]), 1.0)  # one batch of 4 learned, 2 rows pending
    snapshot = first.snapshot_state()
    assert len(snapshot["pending"]["refs"]) == 2
    second = Processor.restored(settings, json.loads(json.dumps(snapshot)), 1.0, lambda positions: None)
    tail = records(*events[6:], start=6)
    a = [r.value for r in first.process(tail, 2.0).predictions + first.close(3.0).predictions]
    b = [r.value for r in second.process(tail, 2.0).predictions + second.close(3.0).predictions]
    assert a == b and len(a) == 6
    assert first.snapshot_state()["weights"] == second.snapshot_state()["weights"]


def test_events_per_second_leaves_out_the_idle_wait() -> None:
    """A bounded run's final record came out as 16 events/s in ``make demo``: the events of a window
    over the whole window, idle wait included. The rate counts the time with input flowing."""
    processor = Processor(Settings(metrics_every=1000, metrics_interval_s=60), 0.0)
    processor.tick(9.8)  # idle polls: no input yet
    processor.process(records(*({"features": [float(i)], "label": i % 2} for i in range(400))), 10.0)
    for now in (10.2, 10.4, 13.0):  # idle polls until the idle timeout ends the run
        processor.tick(now)
    final = Metrics.model_validate_json(processor.close(13.0).metrics[-1].value or b"")
    assert final.window.events == 400
    assert final.events_per_second == 2000.0  # 400 events in the 0.2 s poll that brought them


def test_the_rate_splits_a_poll_between_the_windows_it_closes() -> None:
    processor = Processor(Settings(metrics_every=300), 0.0)
    out = processor.process(records(*({"features": [1.0], "label": 1} for _ in range(400))), 0.5)
    first = Metrics.model_validate_json(out.metrics[0].value or b"")
    assert first.events_per_second == 800.0
    closing = Metrics.model_validate_json(processor.close(30.0).metrics[-1].value or b"")
    assert (closing.window.events, closing.events_per_second) == (100, 800.0)


class SquaredLoss(Loss):
    name = "squared"

    def gradient(self, z: Any, y: Any) -> Any:
        return z - y

    def value(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        return 0.5 * (z - y) ** 2


class Adaline(LinearNeuron):
    """Widrow's adaptive linear neuron: the least-squares line, thresholded at 0.5."""

    kind = "adaline"
    loss = SquaredLoss()
    labels = (0.0, 1.0)
    label_domain = "0 or 1"
    default_learning_rate = 0.01
    probabilistic = False

    def outputs(self, z: np.ndarray) -> np.ndarray:
        return z

    def predicted_labels(self, outputs: np.ndarray) -> np.ndarray:
        return (outputs > 0.5).astype(np.float64)


def test_a_new_kind_of_model_is_one_class(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registering a class is all a new kind needs: flags, labels, predictions, metrics, snapshots."""
    monkeypatch.setitem(MODEL_KINDS, "adaline", Adaline)
    settings = Settings(model="adaline", metrics_every=4)
    assert settings.learning_rate == (0.01,)
    processor = Processor(settings, 0.0)
    events = [{"features": [1.0, float(i % 2)], "label": i % 2} for i in range(4)]
    out = processor.process(records(*events, {"features": [1.0, 0.0], "label": -1}), 1.0)
    predictions = [json.loads(r.value or b"") for r in out.predictions]
    reference = Adaline(2, learning_rate=0.01)
    expected = reference.score_then_learn(np.array([e["features"] for e in events]), np.arange(4) % 2)
    assert [p["score"] for p in predictions] == expected.tolist()
    assert all(p["probability"] is None for p in predictions)
    assert dict(out.dead_letters[0].headers)[ERROR_REASON_HEADER].startswith(b"label must be 0 or 1")
    window = Metrics.model_validate_json(out.metrics[0].value or b"")
    assert window.window.log_loss is None and window.window.accuracy == 0.5
    snapshot = processor.snapshot_state()
    assert snapshot["kind"] == "adaline"
    restored = Processor.restored(settings, json.loads(json.dumps(snapshot)), 2.0, lambda positions: None)
    assert restored.model is not None and restored.model.weights.tolist() == reference.weights.tolist()


@pytest.mark.parametrize("features", ["open", "hashed"])
@pytest.mark.parametrize("mode", [{}, {"mode": "minibatch", "batch_size": 7}])
def test_sparse_rows_past_the_feature_bound_leave_the_rest_as_a_stream_without_them(
    features: str, mode: dict[str, Any]
) -> None:
    """Rows beyond ``--max-feature-abs`` are dead letters and the chunk's other rows close up in the
    sink's arrays, which the rows handed to the model view: the model and every prediction equal
    those of the same polls without the far events (mini-batch rows waiting across the polls). The far
    events bring names of their own, numeric and categorical: none joins the open vocabulary, and
    none of their buckets is taken, so the learned state is the other stream's to the bit."""
    rng = np.random.default_rng(5)
    events = []
    for i in range(300):
        row: dict[str, Any] = {f"x{j}": float(rng.normal()) for j in range(int(rng.integers(1, 6)))}
        row[f"c{i % 3}"] = f"v{int(rng.integers(4))}"
        if i % 11 == 4:
            row |= {"x0": 50.0, f"far{i}": 1.0, "tag": f"t{i}"}  # beyond the bound, with new names
        events.append({"id": str(i), "features": row, "label": int(rng.integers(2))})
    near = [e for e in events if e["features"].get("x0") != 50.0]
    settings = Settings(features=features, hash_bits=10, max_feature_abs=10.0, learning_rate=(0.1,), **mode)
    with_far, without = Processor(settings, 0.0), Processor(settings, 0.0)
    predicted: dict[str, list[bytes]] = {"with": [], "without": []}
    for at in range(0, len(events), 40):
        out = with_far.process(records(*events[at : at + 40]), 1.0)
        far = [e for e in events[at : at + 40] if e["features"].get("x0") == 50.0]
        assert [h[ERROR_CLASS_HEADER] for h in map(dict, (r.headers for r in out.dead_letters))] == [
            b"FeatureOutOfRange"
        ] * len(far)
        predicted["with"] += [r.value or b"" for r in out.predictions]
        kept = [e for e in events[at : at + 40] if e["features"].get("x0") != 50.0]
        predicted["without"] += [r.value or b"" for r in without.process(records(*kept), 1.0).predictions]
    for processor, key in ((with_far, "with"), (without, "without")):
        predicted[key] += [r.value or b"" for r in processor.close(2.0).predictions]
    scores = {key: [json.loads(v)["score"] for v in values] for key, values in predicted.items()}
    assert len(scores["with"]) == len(near) and scores["with"] == scores["without"]
    learned = [
        {
            key: processor.snapshot_state()[key]
            for key in ("feature_names", "n_features", "sparse", "bias", "features")
        }
        for processor in (with_far, without)
    ]
    assert learned[0] == learned[1]
    assert with_far.encoder is not None and without.encoder is not None
    assert with_far.encoder.budget.features == without.encoder.budget.features


@pytest.mark.parametrize("features", ["open", "hashed"])
def test_far_events_with_new_names_leave_the_feature_budget_to_the_good_ones(features: str) -> None:
    """A flood of events beyond ``--max-feature-abs``, each with names never seen, takes nothing of
    ``--max-features`` (open) or of the buckets a snapshot may hold (hashed): the good events after it
    still add their names and are learned."""
    budget = {"max_features": 7} if features == "open" else {"hash_bits": 12}
    settings = Settings(features=features, max_feature_abs=5.0, **budget)
    first = Processor(settings, 0.0)
    first.process(records({"id": "s", "features": {"s": 1.0}, "label": 1}), 0.5)
    snapshot = json.loads(json.dumps(first.snapshot_state()))  # the bound holds after a restore too
    processor = Processor.restored(settings, snapshot, 1.0, lambda positions: None)
    if features == "hashed":
        assert processor.encoder is not None
        processor.encoder.budget.max_features = 7  # the room a large model topic would leave, made small
    flood = [{"id": f"f{i}", "features": {f"n{i}": 9.0, "kind": f"k{i}"}, "label": 1} for i in range(50)]
    out = processor.process(records(*flood, start=1), 1.0)
    assert len(out.dead_letters) == 50 and not out.predictions
    assert {dict(r.headers)[ERROR_CLASS_HEADER] for r in out.dead_letters} == {b"FeatureOutOfRange"}
    good = [
        {"id": f"g{i}", "features": {"a": 1.0, "b": -2.0, "k": f"v{i}"}, "label": i % 2} for i in range(4)
    ]
    out = processor.process(records(*good, start=51), 2.0)
    assert not out.dead_letters and len(out.predictions) == 4
    assert processor.encoder is not None and processor.encoder.budget.features == 7
    if features == "open":
        assert processor.snapshot_state()["feature_names"] == ["s", "a", "b", "k_v0", "k_v1", "k_v2", "k_v3"]
