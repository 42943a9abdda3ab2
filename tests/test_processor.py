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
