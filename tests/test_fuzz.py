"""Property-based tests over what the outside world hands the component: the bytes of a record, the
lines of a file, the JSON of a snapshot. Whatever hypothesis makes up, the stream never stops (each
record is one prediction or one dead letter), the model never holds a non-finite number, every output is
strict JSON, a file's unreadable lines are skipped with their line numbers, and a snapshot is used or
refused with one line. Derandomized, so a failure in CI is a failure here too; ``FUZZ_EXAMPLES=N``
hunts with N fresh random examples instead."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_neuron.config import Settings
from stream_neuron.contracts import ERROR_CLASS_HEADER, ERROR_REASON_HEADER
from stream_neuron.decode import MAX_REASON_CHARS
from stream_neuron.errors import OperatorError
from stream_neuron.neuron import LogisticNeuron
from stream_neuron.processor import Processor
from stream_neuron.records import InputRecord
from stream_neuron.snapshots import SnapshotError, build_snapshot
from stream_neuron.tools.sources import BadRow, events_file
from stream_neuron.training_set import from_events

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize="FUZZ_EXAMPLES" not in os.environ,  # a hunt draws new examples each time
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# JSON-ish values: the shapes an event takes, with the numbers that hurt (huge, tiny, integral floats).
NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, 1, -1, 1e300, -1e308, 5e-324, 2.0**510, 2.0**511, 1e153]),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=8))
JSONISH = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)
EVENTS = st.fixed_dictionaries(
    {
        "features": st.one_of(
            st.lists(NUMBERS, min_size=0, max_size=4), st.dictionaries(st.sampled_from("abcd"), JSONISH)
        )
    },
    optional={"label": SCALARS, "id": st.one_of(st.text(max_size=6), st.integers(), JSONISH), "ts": JSONISH},
)


def as_bytes(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")


RECORD_VALUES = st.one_of(
    st.none(),
    st.binary(max_size=64),
    EVENTS.map(as_bytes),
    JSONISH.map(as_bytes),
    # a good event with a few bytes flipped
    st.tuples(
        EVENTS.map(as_bytes), st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=3)
    ).map(lambda pair: bytes(dict(pair[1]).get(i, b) for i, b in enumerate(pair[0]))),
)


def strict_json(value: bytes | None) -> Any:
    def refuse(text: str) -> None:
        raise ValueError(f"not strict JSON: {text}")

    return json.loads(value or b"", parse_constant=refuse)


def finite_model(processor: Processor) -> bool:
    model = processor.model
    if model is None:
        return True
    state = model.to_dict()
    numbers = [*model.weights.tolist(), state["bias"]]
    if state["scaler"] is not None:
        numbers += [*state["scaler"]["mean"], *state["scaler"]["var"]]
    if model.sparse_scaler is not None:  # open or hashed features: a scaler per feature
        numbers += [*model.sparse_scaler.mean.tolist(), *model.sparse_scaler.var.tolist()]
    return all(math.isfinite(v) for v in numbers)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"standardize": True},
        {"mode": "minibatch", "batch_size": 3, "linger_ms": 0},
        {"model": "perceptron"},
        {"features": "open", "standardize": True},
        {"features": "hashed", "hash_bits": 3, "mode": "minibatch", "batch_size": 3, "linger_ms": 0},
    ],
    ids=["sgd", "standardized", "minibatch", "perceptron", "open", "hashed"],
)
@FUZZ
@given(values=st.lists(RECORD_VALUES, min_size=1, max_size=12))
def test_any_record_is_one_prediction_or_one_dead_letter(
    options: dict[str, Any], values: list[bytes | None]
) -> None:
    processor = Processor(Settings(**options, max_record_bytes=10_000), 0.0)
    records = [InputRecord("in", 0, i, None if i % 3 else b"k", v, []) for i, v in enumerate(values)]
    out = processor.process(records, 1.0)
    out.extend(processor.close(2.0))
    answered = [json.loads(r.value or b"")["source"]["offset"] for r in out.predictions]
    dead = [int(dict(r.headers)["stream_neuron.source.offset"]) for r in out.dead_letters]
    assert sorted(answered + dead) == list(range(len(values)))
    for letter in out.dead_letters:
        headers = dict(letter.headers)
        assert headers[ERROR_CLASS_HEADER] and len(headers[ERROR_REASON_HEADER].decode()) <= MAX_REASON_CHARS
        assert letter.key is not None or letter.value is not None  # every client can send it
    for record in (*out.predictions, *out.metrics):
        strict_json(record.value)
    snapshot = processor.snapshot_record()
    if snapshot is not None:
        strict_json(snapshot.value)
    assert finite_model(processor)


def good_snapshot() -> dict[str, Any]:
    model = LogisticNeuron(2, learning_rate=0.1, standardize=True)
    model.score_then_learn(np.array([[1.0, 2.0], [3.0, -1.0]]), np.array([1.0, 0.0]))
    return build_snapshot("m", model, ("a", "b"), {}, None, {("in", 0): 2})


FIELDS = sorted(good_snapshot())


@FUZZ
@given(
    changes=st.dictionaries(st.sampled_from(FIELDS), JSONISH, max_size=3),
    dropped=st.sets(st.sampled_from(FIELDS), max_size=2),
    whole=st.one_of(st.none(), JSONISH),
)
def test_any_snapshot_is_used_or_refused_with_one_line(
    changes: dict[str, Any], dropped: set[str], whole: Any
) -> None:
    snapshot = good_snapshot() | changes
    for name in dropped:
        snapshot.pop(name, None)
    raw = whole if whole is not None else snapshot
    settings_ = Settings(standardize=True, model_name="m")
    try:
        processor = Processor.restored(settings_, json.loads(json.dumps(raw)), 0.0, lambda p: None)
    except SnapshotError as error:
        assert "\n" not in str(error)
        return
    assert finite_model(processor)
    assert all(0 <= offset < 2**63 for offset in processor.positions.values())


LINES = st.one_of(
    st.binary(max_size=40),
    EVENTS.map(as_bytes),
    st.text(max_size=30).map(lambda t: t.encode("utf-8", "surrogatepass")),
)


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
@FUZZ
@given(lines=st.lists(LINES, min_size=1, max_size=8))
def test_any_file_is_read_line_by_line_and_its_bad_lines_named(
    tmp_path_factory: pytest.TempPathFactory, suffix: str, lines: list[bytes]
) -> None:
    path = Path(tmp_path_factory.mktemp("fuzz")) / f"events{suffix}"
    header = [b"a,b,label"] if suffix == ".csv" else []
    path.write_bytes(
        b"\n".join([*header, *(line.replace(b"\n", b" ").replace(b"\r", b" ") for line in lines)])
    )
    try:
        items = list(events_file(path, "label" if suffix == ".csv" else None))
    except OperatorError:
        return  # a CSV whose header row is not readable: refused as a whole, in one line
    for item in items:
        if isinstance(item, BadRow):
            assert item.line >= 1 and item.reason
        else:
            json.dumps(item, ensure_ascii=False, allow_nan=False).encode("utf-8")  # strict JSON, encodable
    try:
        history = from_events(iter(items), LogisticNeuron, None, 64)
    except OperatorError as error:  # no labelled event among them: one line
        assert "\n" not in str(error)
        return
    assert np.isfinite(history.X).all() and len(history.y) == len(history.X)
