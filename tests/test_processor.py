"""The pure processing step, without a broker: schema fixing, positional events, metrics windows."""

from __future__ import annotations

import json

from stream_neuron.config import Settings
from stream_neuron.events import ERROR_CLASS_HEADER, Metrics, Prediction
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
    first, second = Processor(settings, 0.0), Processor(settings, 0.0)
    events = [{"features": {"a": float(i), "b": float(i % 3)}, "label": i % 2} for i in range(10)]
    first.process(records(*events[:6]), 1.0)  # one batch of 4 learned, 2 rows pending
    snapshot = first.snapshot_state()
    assert len(snapshot["pending"]["refs"]) == 2
    second.restore(json.loads(json.dumps(snapshot)), 1.0)
    tail = records(*events[6:], start=6)
    a = [r.value for r in first.process(tail, 2.0).predictions + first.close(3.0).predictions]
    b = [r.value for r in second.process(tail, 2.0).predictions + second.close(3.0).predictions]
    assert a == b and len(a) == 6
    assert first.snapshot_state()["weights"] == second.snapshot_state()["weights"]
