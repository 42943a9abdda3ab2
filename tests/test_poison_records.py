"""Poison records against the pure processor, by category: each becomes a dead letter with a bounded,
plain reason, touches nothing, and every output stays strict JSON. (The same corpus runs against the
real broker, with restarts, in ``test_poison_stream.py``.)"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from stream_neuron import LogisticNeuron
from stream_neuron.config import Settings
from stream_neuron.contracts import (
    ERROR_CLASS_HEADER,
    ERROR_REASON_HEADER,
    ORIGINAL_BYTES_HEADER,
    TRUNCATED_HEADER,
    Metrics,
    Snapshot,
)
from stream_neuron.decode import MAX_REASON_CHARS, BadEventError, decode_event
from stream_neuron.outputs import OutputLimits, record_bytes
from stream_neuron.processor import Processor
from stream_neuron.records import InputRecord

NAMES = ["a", "b", "c"]
ESCAPES = "\x1b[2J\x1b]0;owned\x07\x1b[31m"


def good(i: int) -> dict[str, Any]:
    rng = np.random.default_rng(i)
    return {
        "id": f"g{i}",
        "features": dict(zip(NAMES, rng.normal(size=3).tolist(), strict=True)),
        "label": i % 2,
    }


def raw_good(features: str, extra: str = "") -> bytes:
    return ('{"features": {' + features + '}, "label": 1' + extra + "}").encode()


FEATURES = '"a": 0.5, "b": -1.0, "c": 2.0'
BIG_INT = "1" + "0" * 400
HUGE_INT = "1" + "0" * 5000

# (category, value, error class)
CORPUS: list[tuple[str, bytes | None, str]] = [
    ("utf8: lone continuation byte", b'{"features": {"a": 1}, "x": "\x80"}', "InvalidUtf8"),
    ("utf8: overlong encoding", b'{"id": "\xc0\xaf", "features": [1, 2, 3]}', "InvalidUtf8"),
    ("utf8: utf-16 with a BOM", '{"features": [1, 2, 3]}'.encode("utf-16"), "InvalidUtf8"),
    ("utf8: latin-1 text", '{"id": "café", "features": [1, 2, 3]}'.encode("latin-1"), "InvalidUtf8"),
    ("json: a UTF-8 BOM first", b"\xef\xbb\xbf" + raw_good(FEATURES), "InvalidJson"),
    ("json: truncated", raw_good(FEATURES)[:-5], "InvalidJson"),
    ("json: trailing garbage", raw_good(FEATURES) + b" {}", "InvalidJson"),
    ("json: nested 2000 deep", b"[" * 2000 + b"]" * 2000, "InvalidJson"),
    ("json: NUL byte", b'{"features": [1, 2, 3]}\x00', "InvalidJson"),
    ("json: lone surrogate in the id", raw_good(FEATURES, ', "id": "\\ud800"'), "InvalidJson"),
    ("json: empty", b"", "InvalidJson"),
    ("json: whitespace", b"   \n", "InvalidJson"),
    (
        "duplicate: features twice",
        b'{"features": {"a": 1}, "features": {"a": 1, "b": 2, "c": 3}, "label": 1}',
        "DuplicateKey",
    ),
    ("duplicate: a feature twice", raw_good('"a": 1, "a": 2, "b": 3, "c": 4'), "DuplicateKey"),
    ("duplicate: label twice", b'{"features": [1, 2, 3], "label": 1, "label": 0}', "DuplicateKey"),
    ("duplicate: in an ignored object", raw_good(FEATURES, ', "meta": {"k": 1, "k": 2}'), "DuplicateKey"),
    ("number: 1e400 feature", raw_good('"a": 1e400, "b": 0, "c": 0'), "InvalidFeature"),
    ("number: -1e400 feature", raw_good('"a": 1, "b": -1e400, "c": 0'), "InvalidFeature"),
    ("number: NaN feature", raw_good('"a": NaN, "b": 0, "c": 0'), "InvalidFeature"),
    ("number: -Infinity by position", b'{"features": [1, -Infinity, 3], "label": 1}', "InvalidFeature"),
    ("number: 400-digit integer feature", raw_good(f'"a": {BIG_INT}, "b": 0, "c": 0'), "InvalidFeature"),
    (
        "number: 400-digit integer by position",
        f'{{"features": [1, 2, -{BIG_INT}]}}'.encode(),
        "InvalidFeature",
    ),
    ("number: 5000-digit integer feature", raw_good(f'"a": {HUGE_INT}, "b": 0, "c": 0'), "InvalidNumber"),
    (
        "number: 400-digit integer label",
        f'{{"features": [1, 2, 3], "label": {BIG_INT}}}'.encode(),
        "InvalidLabel",
    ),
    ("number: 1e400 label", b'{"features": [1, 2, 3], "label": 1e400}', "InvalidLabel"),
    (
        "number: 5000-digit integer id",
        f'{{"features": [1, 2, 3], "id": {HUGE_INT}}}'.encode(),
        "InvalidNumber",
    ),
    ("type: a string feature", raw_good('"a": "1", "b": 0, "c": 0'), "InvalidFeature"),
    ("type: a boolean feature", raw_good('"a": true, "b": 0, "c": 0'), "InvalidFeature"),
    ("type: a null feature", raw_good('"a": null, "b": 0, "c": 0'), "InvalidFeature"),
    ("type: a nested feature", raw_good('"a": [1], "b": 0, "c": 0'), "InvalidFeature"),
    ("type: the label a string", b'{"features": [1, 2, 3], "label": "1"}', "InvalidLabel"),
    ("type: the id an object", b'{"features": [1, 2, 3], "id": {}}', "InvalidId"),
    ("type: the id a boolean", b'{"features": [1, 2, 3], "id": true}', "InvalidId"),
    ("type: ts a number", b'{"features": [1, 2, 3], "ts": 5}', "InvalidTimestamp"),
    ("label: 2", b'{"features": [1, 2, 3], "label": 2}', "InvalidLabel"),
    ("label: -1 for the logistic model", b'{"features": [1, 2, 3], "label": -1}', "InvalidLabel"),
    ("label: 0.5", b'{"features": [1, 2, 3], "label": 0.5}', "InvalidLabel"),
    ("schema: an unknown name", raw_good('"a": 1, "b": 2, "zz": 3'), "UnknownFeature"),
    (
        "schema: an unknown 50 KB name of escapes",
        raw_good(f'"a": 1, "b": 2, {json.dumps(ESCAPES * 3000)}: 3'),
        "UnknownFeature",
    ),
    ("schema: a missing name", raw_good('"a": 1, "b": 2'), "MissingFeature"),
    ("schema: too many by position", b'{"features": [1, 2, 3, 4]}', "WrongFeatureCount"),
    ("schema: none", b'{"features": [], "label": 1}', "WrongFeatureCount"),
    ("shape: an array", b"[1, 2, 3]", "InvalidEvent"),
    ("shape: a string", b'"features"', "InvalidEvent"),
    ("shape: no features", b'{"label": 1}', "MissingFeatures"),
    ("shape: features a string", b'{"features": "1,2,3"}', "InvalidFeatures"),
    (
        "size: over --max-record-bytes",
        raw_good(FEATURES, ', "pad": "' + "x" * 250_000 + '"'),
        "OversizedRecord",
    ),
    ("size: a tombstone", None, "EmptyValue"),
    ("range: 1e300 features", raw_good('"a": 1e300, "b": 1e300, "c": 1e300'), "FeatureOutOfRange"),
    ("range: mixed 1e308 features", raw_good('"a": 1e308, "b": -1e308, "c": 1e308'), "FeatureOutOfRange"),
    ("range: one at -1e13", raw_good('"a": 1, "b": -1e13, "c": 0'), "FeatureOutOfRange"),
]


def strict_json(value: bytes | None) -> Any:
    def refuse(constant: str) -> None:
        raise AssertionError(f"not JSON: {constant} in {value!r}")

    return json.loads(value or b"", parse_constant=refuse)


def run_corpus(
    settings: Settings, limits: OutputLimits | None = None
) -> tuple[Processor, Any, dict[int, str]]:
    """Good events with every poison among them; the first three values are poison before any good
    event, so none of them may fix the schema."""
    processor = Processor(settings, 0.0, limits=limits)
    values: list[bytes | None] = []
    poison_at: dict[int, str] = {}
    for i, (name, value, _) in enumerate(CORPUS):
        if i >= 3:
            values.append(json.dumps(good(i)).encode())
            values.append(json.dumps(good(1000 + i)).encode())
        poison_at[len(values)] = name
        values.append(value)
    records = [
        InputRecord("in", 0, offset, f"k{offset}".encode(), v, [("h", b"1")])
        for offset, v in enumerate(values)
    ]
    out = processor.process(records, 1.0)
    out.extend(processor.close(2.0))
    return processor, out, poison_at


@pytest.mark.parametrize("mode", ["sgd", "minibatch"])
def test_every_poison_category_is_a_dead_letter_and_the_good_events_learn_as_alone(mode: str) -> None:
    settings = Settings(
        mode=mode,
        batch_size=8,
        linger_ms=0,
        learning_rate=0.05,
        max_record_bytes=200_000,
        max_feature_abs=1e12,
    )
    processor, out, poison_at = run_corpus(settings)
    classes = {name: cls for name, _, cls in CORPUS}
    dead = {int(dict(r.headers)["stream_neuron.source.offset"]): r for r in out.dead_letters}
    assert set(dead) == set(poison_at), sorted(set(poison_at) ^ set(dead))
    for offset, record in dead.items():
        headers = dict(record.headers)
        name = poison_at[offset]
        assert headers[ERROR_CLASS_HEADER].decode() == classes[name], (name, headers[ERROR_REASON_HEADER])
        reason = headers[ERROR_REASON_HEADER].decode()  # always UTF-8
        assert len(reason) <= MAX_REASON_CHARS and reason.isprintable(), (name, reason)
        assert "\x1b" not in reason
        assert record.key == f"k{offset}".encode() and headers["h"] == b"1"
    predictions = [strict_json(r.value) for r in out.predictions]
    good_ids = [p["id"] for p in predictions]
    assert good_ids == [e for i in range(3, len(CORPUS)) for e in (f"g{i}", f"g{1000 + i}")]
    for record in out.metrics:
        Metrics.model_validate(strict_json(record.value))
    snapshot = processor.snapshot_record()
    assert snapshot is not None
    Snapshot.model_validate(strict_json(snapshot.value))
    assert processor.schema.names == tuple(NAMES)
    # The good events alone, offline: the same model.
    events = [good(int(i[1:])) for i in good_ids]
    X = np.array([[e["features"][n] for n in NAMES] for e in events])
    y = np.array([e["label"] for e in events], dtype=float)
    offline = LogisticNeuron(3, learning_rate=0.05)
    if mode == "sgd":
        offline.score_then_learn(X, y)
    else:
        for start in range(0, len(y), 8):
            offline.learn_batch(X[start : start + 8], y[start : start + 8])
    assert processor.model is not None
    np.testing.assert_allclose(processor.model.weights, offline.weights, rtol=0, atol=1e-12)
    final = Metrics.model_validate(strict_json(out.metrics[-1].value))
    assert (final.events, final.dead_letters, final.labelled) == (
        len(poison_at) + len(y),
        len(poison_at),
        len(y),
    )


@pytest.mark.parametrize(
    ("first", "words"),
    [
        ({"x" * 201: 1.0, "b": 2.0}, "over the limit of 200"),
        ({ESCAPES * 3000: 1.0}, "over the limit of 200"),
        ({ESCAPES: 1.0}, "control characters"),
        ({"line\nbreak": 1.0}, "control characters"),
        ({"": 1.0}, "empty"),
        ({"tab\there": 1.0}, "control characters"),
    ],
)
def test_a_first_event_with_unusable_names_cannot_fix_the_schema(first: dict[str, float], words: str) -> None:
    processor = Processor(Settings(), 0.0)
    values = [{"features": first, "label": 1}, good(1), good(2)]
    out = processor.process(
        [InputRecord("in", 0, i, None, json.dumps(v).encode(), []) for i, v in enumerate(values)], 1.0
    )
    assert len(out.dead_letters) == 1 and len(out.predictions) == 2
    reason = dict(out.dead_letters[0].headers)[ERROR_REASON_HEADER].decode()
    assert words in reason and len(reason) <= MAX_REASON_CHARS and "\x1b" not in reason
    assert processor.schema.names == tuple(NAMES)


def test_feature_names_flag_is_checked_the_same_way() -> None:
    with pytest.raises(ValueError, match="control characters"):
        Settings(feature_names=("a", "b\x1b[31m"))


def test_a_prediction_that_would_outgrow_its_topic_is_a_dead_letter_before_it_touches_the_model() -> None:
    limits = OutputLimits(predictions=4096, dead_letters=1 << 20)
    processor = Processor(Settings(learning_rate=0.5), 0.0, limits=limits)
    long_ids = {
        "é" * 700: "PredictionTooLarge",
        "\u2603" * 1000: "PredictionTooLarge",
        "x" * 3900: "PredictionTooLarge",
    }
    values = [good(1), *({"id": i, "features": [0.1, 0.2, 0.3], "label": 1} for i in long_ids), good(2)]
    values.insert(2, {"id": "short", "features": {"a": 1.0, "b": 1.0, "c": 1.0}, "label": 1})
    records = [InputRecord("in", 0, i, None, json.dumps(v).encode(), []) for i, v in enumerate(values)]
    records.append(InputRecord("in", 0, len(records), b"k" * 4000, json.dumps(good(3)).encode(), []))
    out = processor.process(records, 1.0)
    assert [dict(r.headers)[ERROR_CLASS_HEADER] for r in out.dead_letters] == [b"PredictionTooLarge"] * 4
    assert [strict_json(r.value)["id"] for r in out.predictions] == ["g1", "short", "g2"]
    assert all(record_bytes(r.key, r.value, r.headers) <= 4096 for r in out.predictions)
    assert processor.model is not None and processor.model.n_updates == 3


def test_a_dead_letter_larger_than_its_topic_is_cut_to_fit_and_says_so() -> None:
    limits = OutputLimits(dead_letters=8192)
    processor = Processor(Settings(max_record_bytes=1 << 20), 0.0, limits=limits)
    huge_value = b'{"features": "' + b"z" * 200_000 + b'"}'
    headers = [(f"h{i}", b"v" * 500) for i in range(40)]
    records = [
        InputRecord("in", 0, 0, b"key", huge_value, []),
        InputRecord("in", 0, 1, b"K" * 20_000, b"not json", []),
        InputRecord("in", 0, 2, b"key", b"[1]", headers),
    ]
    out = processor.process(records, 1.0)
    assert len(out.dead_letters) == 3
    for record, original, cut in zip(
        out.dead_letters, records, ["value", "value, headers, key", "value, headers"], strict=True
    ):
        headers_of = dict(record.headers)
        assert record_bytes(record.key, record.value, record.headers) <= 8192
        assert headers_of[TRUNCATED_HEADER].decode() == cut
        assert headers_of[ORIGINAL_BYTES_HEADER] == str(len(original.value or b"")).encode()
        assert (original.value or b"").startswith(record.value or b"")
        assert headers_of[ERROR_CLASS_HEADER] in (b"InvalidFeatures", b"InvalidJson", b"InvalidEvent")


def test_the_model_never_holds_a_non_finite_number_and_warns_once_when_it_diverges(
    caplog: pytest.LogCaptureFixture,
) -> None:
    processor = Processor(Settings(learning_rate=1e6, metrics_every=50), 0.0)
    rng = np.random.default_rng(3)
    values: list[dict[str, Any]] = []
    for i in range(400):
        x = rng.normal(size=3) * (1e150 if i % 97 == 5 else 1.0)
        values.append({"features": x.tolist(), "label": int(rng.random() < 0.5)})
    out = processor.process(
        [InputRecord("in", 0, i, None, json.dumps(v).encode(), []) for i, v in enumerate(values)], 1.0
    )
    metrics = [Metrics.model_validate(strict_json(r.value)) for r in out.metrics]
    assert any(m.diverging for m in metrics)
    assert all(m.weight_norm is not None for m in metrics)
    assert sum("keep growing" in r.message for r in caplog.records) == 1
    snapshot = processor.snapshot_record()
    assert snapshot is not None
    Snapshot.model_validate(strict_json(snapshot.value))


def test_a_quarantined_record_becomes_a_bare_dead_letter() -> None:
    processor = Processor(Settings(), 0.0)
    processor.quarantine[("in", 0, 1)] = (
        "the broker refused its 'out' record: MessageSizeTooLargeError",
        True,
    )
    records = [InputRecord("in", 0, i, b"k", json.dumps(good(i)).encode(), [("h", b"v")]) for i in range(3)]
    out = processor.process(records, 1.0)
    assert [strict_json(r.value)["id"] for r in out.predictions] == ["g0", "g2"]
    (dead,) = out.dead_letters
    assert (dead.key, dead.value) == (b"", None) and "h" not in dict(dead.headers)
    assert dict(dead.headers)[ERROR_CLASS_HEADER] == b"RefusedByBroker"


def test_an_output_the_broker_refuses_is_replaced_by_a_dead_letter_then_a_bare_one() -> None:
    processor = Processor(Settings(), 0.0)
    out = processor.process([InputRecord("in", 0, 0, b"k", json.dumps(good(0)).encode(), [("h", b"v")])], 1.0)
    prediction = out.predictions[0]
    replacement: Callable[..., Any] = processor.replacement
    dead = replacement(prediction, "MessageSizeTooLargeError: too large")
    assert dead.topic == Settings().dead_letter_topic and dead.value == prediction.origin.value
    bare = replacement(dead, "MessageSizeTooLargeError: too large")
    assert (bare.key, bare.value, bare.origin) == (b"", None, None)
    assert replacement(bare, "again") is None
    assert replacement(out.metrics[0] if out.metrics else processor.close(2.0).metrics[0], "x") is None


def test_a_scorer_refuses_what_run_refuses_for_the_same_reasons() -> None:
    """The scorers' processor (no learning) on the same corpus: the same dead letters, class by class
    (a label is checked as run checks it, and a valid one ignored)."""
    settings = Settings(feature_names=tuple(NAMES), max_record_bytes=200_000, max_feature_abs=1e12)
    scorer = Processor(settings, 0.0, learning=False)
    records = [InputRecord("in", 0, i, b"k", value, []) for i, (_, value, _) in enumerate(CORPUS)]
    out = scorer.process(records, 1.0)
    got = {
        int(dict(r.headers)["stream_neuron.source.offset"]): dict(r.headers)[ERROR_CLASS_HEADER].decode()
        for r in out.dead_letters
    }
    assert got == {i: cls for i, (_, _, cls) in enumerate(CORPUS)}


def test_a_record_without_key_and_value_gets_a_dead_letter_every_client_can_send() -> None:
    from stream_neuron.contracts import NULL_FIELDS_HEADER

    processor = Processor(Settings(), 0.0)
    out = processor.process([InputRecord("in", 0, 7, None, None, [])], 1.0)
    [letter] = out.dead_letters
    assert (letter.key, letter.value) == (None, b"")
    assert dict(letter.headers)[NULL_FIELDS_HEADER] == b"key, value"
    assert dict(letter.headers)[ERROR_CLASS_HEADER] == b"EmptyValue"


def test_an_answer_with_a_nan_label_is_an_invalid_label() -> None:
    processor = Processor(Settings(label_window=10), 0.0)
    out = processor.process([InputRecord("in", 0, 0, b"k", b'{"id": "q", "label": NaN}', [])], 1.0)
    assert dict(out.dead_letters[0].headers)[ERROR_CLASS_HEADER] == b"InvalidLabel"


@pytest.mark.parametrize(
    ("value", "named", "text"),
    [
        (b'{"id": "b\\ud800", "features": [1.0], "label": 0}', False, '"b\\ud800"'),
        (b'{"features": {"a": "x\\udc00y"}, "label": 0}', True, '"x\\udc00y"'),
        (b'{"features": {"\\ud800": 1}, "label": 0}', True, '"\\ud800"'),
    ],
)
def test_a_lone_surrogate_escape_is_named_with_its_string(value: bytes, named: bool, text: str) -> None:
    with pytest.raises(BadEventError) as refused:
        decode_event(value, 10**6, named=named)
    assert refused.value.reason == (
        f"the value is not valid JSON text: {text} escapes a lone surrogate, which is not Unicode"
    )
    assert refused.value.error_class == "InvalidJson"
