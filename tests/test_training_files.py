"""``fit --file`` on JSON lines: each line read as ``run`` reads a record's value, bad ones named by line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from stream_neuron import LogisticNeuron
from stream_neuron.decode import BadEventError, decode_event
from stream_neuron.errors import OperatorError
from stream_neuron.feature_encoding import FeatureHashing, OpenVocabulary
from stream_neuron.neuron.sparse_rows import SparseRows
from stream_neuron.tools.sources import events_file, json_lines
from stream_neuron.training_set import from_events, from_lines

BAD = [
    b"{not json",
    b'{"features": [1.0, NaN], "label": 1}',
    b'{"features": [1.0, 2.0], "label": 1, "label": 0}',
    b'{"id": "b\\ud800", "features": [1.0, 2.0], "label": 0}',
    b"\xff\xfe not UTF-8",
    b'{"features": [1.0, 2.0], "label": "yes"}',
]


def lines_file(tmp_path: Path, suffix: str = ".jsonl") -> tuple[Path, list[bytes]]:
    rng = np.random.default_rng(4)
    good = [
        json.dumps({"id": f"e{i}", "features": rng.normal(size=2).round(4).tolist(), "label": i % 2}).encode()
        for i in range(40)
    ]
    lines = good[:5] + BAD + [b"", b"   "] + good[5:]
    path = tmp_path / f"history{suffix}"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path, good


def reason(value: bytes) -> str:
    with pytest.raises(BadEventError) as refused:
        decode_event(value, 2**62)
    return refused.value.reason


def test_bad_lines_are_refused_for_run_s_reasons_after_their_number(tmp_path: Path) -> None:
    path, _ = lines_file(tmp_path)
    lines = json_lines(path)
    assert lines is not None
    history = from_lines(lines, LogisticNeuron, None, 64.0)
    assert (history.read, len(history.y), sum(history.bad.values())) == (46, 40, 6)
    assert history.first_reasons == [f"line {6 + i}: {reason(value)}" for i, value in enumerate(BAD[:5])]
    assert "escapes a lone surrogate" in history.first_reasons[3]


def test_the_good_lines_make_the_rows_the_events_make(tmp_path: Path) -> None:
    path, good = lines_file(tmp_path)
    lines = json_lines(path)
    assert lines is not None
    from_file = from_lines(lines, LogisticNeuron, None, 64.0)
    from_dicts = from_events([json.loads(v) for v in good], LogisticNeuron, None, 64.0)
    np.testing.assert_array_equal(from_file.X, from_dicts.X)
    np.testing.assert_array_equal(from_file.y, from_dicts.y)


def test_hashed_lines_are_encoded_as_the_events_are(tmp_path: Path) -> None:
    path = tmp_path / "named.jsonl"
    events = [{"features": {"x": i / 7, "city": f"c{i % 3}"}, "label": i % 2} for i in range(30)]
    path.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    lines = json_lines(path)
    assert lines is not None
    from_file = from_lines(lines, LogisticNeuron, None, 64.0, encoder=FeatureHashing(6))
    from_dicts = from_events(events, LogisticNeuron, None, 64.0, encoder=FeatureHashing(6))
    assert isinstance(from_file.X, SparseRows) and isinstance(from_dicts.X, SparseRows)
    for part in ("indptr", "indices", "values", "scaled"):
        np.testing.assert_array_equal(getattr(from_file.X, part), getattr(from_dicts.X, part))
    assert from_file.X.n_rows == 30


def test_fit_counts_a_topic_in_records_a_json_lines_file_in_lines_and_a_csv_file_in_rows() -> None:
    from stream_neuron.command_config import FitSettings
    from stream_neuron.fit import read_unit

    assert read_unit(FitSettings(input_topic="history")) == "records"
    assert [read_unit(FitSettings(file=Path(f"h.{suffix}"))) for suffix in ("jsonl", "ndjson", "json")] == [
        "lines"
    ] * 3
    assert read_unit(FitSettings(file=Path("h.csv"))) == "rows"


def test_a_csv_file_is_not_json_lines_and_a_missing_file_is_named(tmp_path: Path) -> None:
    csv = tmp_path / "history.csv"
    csv.write_text("a,b,label\n1,2,1\n")
    assert json_lines(csv) is None
    assert len(list(events_file(csv, "label"))) == 1
    with pytest.raises(OperatorError, match="no such file"):
        json_lines(tmp_path / "missing.jsonl")


def test_fit_leaves_the_names_and_buckets_of_events_beyond_the_bound_out_of_the_model() -> None:
    """``fit --max-feature-abs``: an event beyond it is counted bad, and its names (numeric and
    categorical, seen nowhere else) join neither the vocabulary nor the buckets in use."""
    events: list[dict[str, object]] = [
        {"features": {"x": i / 7, "city": f"c{i % 3}"}, "label": i % 2} for i in range(12)
    ]
    far = [{"features": {"x": 50.0, f"far{i}": 1.0, "tag": f"t{i}"}, "label": 1} for i in range(3)]
    for encoder, twin in ((OpenVocabulary(), OpenVocabulary()), (FeatureHashing(12), FeatureHashing(12))):
        history = from_events(events[:6] + far + events[6:], LogisticNeuron, None, 64.0, 10.0, encoder)
        assert history.bad == {"FeatureOutOfRange": 3} and history.X.n_rows == 12
        from_events(events, LogisticNeuron, None, 64.0, 10.0, twin)
        if isinstance(encoder, OpenVocabulary):
            assert history.names == tuple(twin.names) == ("x", "city_c0", "city_c1", "city_c2")
        else:
            assert encoder.in_use.tolist() == twin.in_use.tolist()
            assert encoder.budget.features == twin.budget.features
