"""Every kind of bad input becomes a dead letter with a reason; the stream goes on; the weights are as
if the bad records had never been sent."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from stream_neuron import LogisticNeuron
from stream_neuron.contracts import (
    ERROR_CLASS_HEADER,
    ERROR_REASON_HEADER,
    SOURCE_OFFSET_HEADER,
    SOURCE_PARTITION_HEADER,
    SOURCE_TOPIC_HEADER,
)
from tests.component import (
    Topics,
    json_records,
    last_snapshot,
    phishing_events,
    raw_records,
    run_component,
    send,
    weights,
)
from tests.datasets import phishing

pytestmark = pytest.mark.kafka

MAX_BYTES = 4096


def with_features(**changes: Any) -> dict[str, Any]:
    event = phishing_events()[0]
    features = dict(event["features"])
    for name, value in changes.items():
        if value is ...:
            del features[name]
        else:
            features[name] = value
    return {"id": "bad", "features": features, "label": 1}


def raw_event(features_json: str) -> bytes:
    return b'{"features": {' + features_json.encode() + b'}, "label": 1}'


def feature_json(**override: str) -> str:
    base = {k: json.dumps(v) for k, v in phishing_events()[0]["features"].items()}
    base.update(override)
    return ", ".join(f'"{k}": {v}' for k, v in base.items())


# (value, error class, words the reason must contain)
BAD: list[tuple[bytes | None, str, str]] = [
    (b'\xff\xfe{"features": {}}', "InvalidUtf8", "not valid UTF-8"),
    (b'{"features": {"https": 1,', "InvalidJson", "not valid JSON"),
    (b"[1, 2, 3]", "InvalidEvent", "must be a JSON object, got an array"),
    (b'"hello"', "InvalidEvent", "must be a JSON object, got a string"),
    (b'{"label": 1}', "MissingFeatures", 'no "features"'),
    (json.dumps({"features": "abc", "label": 1}).encode(), "InvalidFeatures", "object or an array"),
    (json.dumps({"features": None, "label": 1}).encode(), "InvalidFeatures", "object or an array"),
    (json.dumps(with_features(https="1")).encode(), "InvalidFeature", 'feature "https" must be a number'),
    (raw_event(feature_json(https="NaN")), "InvalidFeature", 'feature "https" must be a finite number'),
    (raw_event(feature_json(https="Infinity")), "InvalidFeature", "finite number"),
    (raw_event(feature_json(https="1e400")), "InvalidFeature", "finite number"),
    (json.dumps(with_features(https=True)).encode(), "InvalidFeature", "got a boolean"),
    (
        json.dumps({"features": [0.5] * 8, "label": 1}).encode(),
        "WrongFeatureCount",
        "expected 9 features, got 8",
    ),
    (json.dumps(with_features(colour=1.0)).encode(), "UnknownFeature", 'unknown feature "colour"'),
    (json.dumps(with_features(https=...)).encode(), "MissingFeature", 'missing feature "https"'),
    (json.dumps({"features": {}, "label": 0}).encode(), "MissingFeature", "missing feature"),
    (json.dumps(with_features() | {"label": 2}).encode(), "InvalidLabel", "label must be 0 or 1"),
    (json.dumps(with_features() | {"label": -1}).encode(), "InvalidLabel", "got -1"),
    (json.dumps(with_features() | {"label": "1"}).encode(), "InvalidLabel", '"label" must be a number'),
    (json.dumps(with_features() | {"id": {"a": 1}}).encode(), "InvalidId", '"id" must be a string'),
    (
        json.dumps(with_features() | {"id": "b\ud800"}).encode(),
        "InvalidJson",
        '"b\\ud800" escapes a lone surrogate, which is not Unicode',
    ),
    (
        json.dumps(with_features() | {"id": "x" * MAX_BYTES}).encode(),
        "OversizedRecord",
        f"over the limit of {MAX_BYTES}",
    ),
    (None, "EmptyValue", "tombstone"),
]


def test_malformed_corpus_is_dead_lettered_and_the_rest_learned(kafka_bootstrap: str) -> None:
    good = phishing_events()[:300]
    # Bad records before the first valid event (it must not fix the schema), and spread through.
    slots = {0: 0, 1: 1, **{13 * i + 5: i for i in range(2, len(BAD))}}
    values: list[bytes | None] = []
    keys: list[bytes | None] = []
    headers: list[list[tuple[str, bytes]]] = []
    bad_offsets: dict[int, int] = {}
    good_iter = iter(good)
    position = 0
    while len(values) < len(good) + len(BAD):
        if position in slots:
            index = slots.pop(position)
            bad_offsets[len(values)] = index
            values.append(BAD[index][0])
            keys.append(f"bad-{index}".encode())
            headers.append([("trace", f"t-{index}".encode())])
        else:
            event = next(good_iter)
            values.append(json.dumps(event).encode())
            keys.append(event["id"].encode())
            headers.append([])
        position += 1
    topics = Topics.create(kafka_bootstrap)
    send(kafka_bootstrap, topics.input, values, keys, headers)
    run_component(
        kafka_bootstrap, topics, "--learning-rate", "0.1", "--max-record-bytes", str(MAX_BYTES),
        "--max-events", str(len(values)),
    )  # fmt: skip

    dead = raw_records(kafka_bootstrap, topics.dead_letters)
    assert len(dead) == len(BAD)
    for record in dead:
        header = dict(record.headers)
        offset = int(header[SOURCE_OFFSET_HEADER])
        index = bad_offsets[offset]
        value, error_class, words = BAD[index]
        assert record.key == f"bad-{index}".encode()
        assert record.value == value
        assert header["trace"] == f"t-{index}".encode()
        assert header[ERROR_CLASS_HEADER].decode() == error_class, header[ERROR_REASON_HEADER]
        assert words in header[ERROR_REASON_HEADER].decode()
        assert header[SOURCE_TOPIC_HEADER].decode() == topics.input
        assert header[SOURCE_PARTITION_HEADER] == b"0"

    predictions = json_records(kafka_bootstrap, topics.predictions)
    assert [p["id"] for p in predictions] == [e["id"] for e in good]
    _, _, X, y = phishing()
    offline = LogisticNeuron(9, learning_rate=0.1)
    expected = offline.score_then_learn(X[:300], y[:300])
    np.testing.assert_allclose([p["probability"] for p in predictions], expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        weights(last_snapshot(kafka_bootstrap, topics)), offline.weights, rtol=0, atol=1e-12
    )
    final = json_records(kafka_bootstrap, topics.metrics)[-1]
    assert (final["events"], final["labelled"], final["dead_letters"]) == (len(values), 300, len(BAD))
