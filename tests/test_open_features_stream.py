"""Open and hashed features through the processor (no broker): predictions equal river's pipelines
event for event, bad features become dead letters, and a snapshot continues exactly."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from river import compose, preprocessing

from stream_neuron.config import Settings
from stream_neuron.contracts import ERROR_CLASS_HEADER, ERROR_REASON_HEADER, Prediction, Snapshot
from stream_neuron.processor import Processor
from stream_neuron.records import InputRecord
from tests.test_open_features_parity import open_stream, river_final, river_model, river_open

TOL = 1e-9


def records(events: list[dict[str, Any]], start: int = 0) -> list[InputRecord]:
    return [
        InputRecord("in", 0, start + i, None, json.dumps(event).encode(), [])
        for i, event in enumerate(events)
    ]


def labelled(events: list[dict[str, Any]], y: np.ndarray) -> list[dict[str, Any]]:
    return [
        {"id": f"e{i}", "features": x, "label": int(label)}
        for i, (x, label) in enumerate(zip(events, y, strict=True))
    ]


def probabilities(out: Any) -> list[float]:
    return [Prediction.model_validate_json(r.value).probability for r in out.predictions]


def run_in_polls(
    processor: Processor, events: list[dict[str, Any]], poll: int = 37, start: int = 0
) -> list[float]:
    seen: list[float] = []
    for at in range(0, len(events), poll):
        seen += probabilities(processor.process(records(events[at : at + poll], start + at), float(at)))
    seen += probabilities(processor.close(1e9))
    return seen


@pytest.mark.parametrize("standardize", [False, True], ids=["raw", "standardized"])
def test_open_features_in_the_stream_equal_river(standardize: bool) -> None:
    events, y = open_stream(500, seed=11)
    processor = Processor(Settings(features="open", learning_rate=(0.05,), standardize=standardize), 0.0)
    published = run_in_polls(processor, labelled(events, y))
    river = river_open(river_model("logistic", {}, 0.05), standardize, drop_zeros=False)
    expected = []
    for x, label in zip(events, y, strict=True):
        expected.append(river.predict_proba_one(x).get(True, 0.0))
        river.learn_one(x, bool(label))
    np.testing.assert_allclose(published, expected, rtol=0, atol=TOL)
    model, final = processor.model, river_final(river)
    assert model is not None and processor.encoder is not None
    names = processor.encoder.names  # type: ignore[union-attr]
    np.testing.assert_allclose(model.weights, [final.weights.get(k, 0.0) for k in names], rtol=0, atol=TOL)


def test_hashed_features_in_mini_batches_and_a_restart_continue_exactly() -> None:
    events, y = open_stream(400, seed=12)
    stream = labelled(events, y)
    settings = Settings(
        features="hashed", hash_bits=12, hash_seed=3, mode="minibatch", batch_size=8, learning_rate=(0.1,)
    )
    whole = Processor(settings, 0.0)
    expected = run_in_polls(whole, stream)
    first = Processor(settings, 0.0)
    before = run_in_polls_no_close(first, stream[:203])
    snapshot = json.loads(first.snapshot_record().value)  # type: ignore[union-attr]
    Snapshot.model_validate(snapshot)
    assert snapshot["features"]["mode"] == "hashed" and snapshot["weights"] == []
    second = Processor.restored(settings, snapshot, 0.0, lambda positions: None)
    after = run_in_polls(second, stream[203:], start=203)
    assert before + after == expected
    assert whole.model is not None and second.model is not None
    np.testing.assert_array_equal(whole.model.weights, second.model.weights)


def run_in_polls_no_close(processor: Processor, events: list[dict[str, Any]]) -> list[float]:
    seen: list[float] = []
    for at in range(0, len(events), 37):
        seen += probabilities(processor.process(records(events[at : at + 37], at), float(at)))
    return seen


def test_hashed_features_equal_river_feature_hasher() -> None:
    events, y = open_stream(300, seed=13)
    processor = Processor(Settings(features="hashed", hash_bits=16, hash_seed=5, learning_rate=(0.05,)), 0.0)
    published = run_in_polls(processor, labelled(events, y))
    river = compose.Pipeline(preprocessing.FeatureHasher(2**16, seed=5), river_model("logistic", {}, 0.05))
    expected = []
    for x, label in zip(events, y, strict=True):
        expected.append(river.predict_proba_one(x).get(True, 0.0))
        river.learn_one(x, bool(label))
    np.testing.assert_allclose(published, expected, rtol=0, atol=TOL)


def test_an_open_snapshot_carries_the_vocabulary_and_restarts_exactly() -> None:
    events, y = open_stream(300, seed=14)
    stream = labelled(events, y)
    settings = Settings(features="open", standardize=True, optimizer="adam", learning_rate=(0.05,))
    whole = Processor(settings, 0.0)
    expected = run_in_polls(whole, stream)
    first = Processor(settings, 0.0)
    before = run_in_polls_no_close(first, stream[:150])
    snapshot = json.loads(first.snapshot_record().value)  # type: ignore[union-attr]
    assert snapshot["feature_names"] == first.encoder.names  # type: ignore[union-attr]
    second = Processor.restored(settings, snapshot, 0.0, lambda positions: None)
    assert before + run_in_polls(second, stream[150:], start=150) == expected


def dead_letter_reasons(out: Any) -> list[tuple[str, str]]:
    return [
        (dict(r.headers)[ERROR_CLASS_HEADER].decode(), dict(r.headers)[ERROR_REASON_HEADER].decode())
        for r in out.dead_letters
    ]


def test_bad_features_are_dead_letters_with_reasons_and_the_vocabulary_limit_holds() -> None:
    processor = Processor(Settings(features="open", max_features=4), 0.0)
    out = processor.process(
        records(
            [
                {"features": {"a": 1, "b": "x"}, "label": 1},
                {"features": {"a": {"nested": 1}}, "label": 1},
                {"features": [1, 2], "label": 1},
                {"features": {"a": None}, "label": 0},
                {"features": {"c": 1, "d": 2, "e": 3}, "label": 0},
                {"features": {"c": 1, "d": True}, "label": 0},
                {"features": {"a": 1e300}, "label": 0},
            ]
        ),
        1.0,
    )
    reasons = dead_letter_reasons(out)
    assert [cls for cls, _ in reasons] == [
        "InvalidFeature", "InvalidFeatures", "InvalidFeature", "TooManyFeatures", "FeatureOutOfRange",
    ]  # fmt: skip
    assert 'feature "a" must be a number, a string or a boolean, got an object' in reasons[0][1]
    assert "must be an object by name" in reasons[1][1]
    assert "over the limit of 4 (--max-features)" in reasons[3][1]
    assert len(out.predictions) == 2
    assert processor.encoder.names == ["a", "b_x", "c", "d_True"]  # type: ignore[union-attr]


def test_a_snapshot_of_other_feature_settings_is_refused_in_one_line() -> None:
    processor = Processor(Settings(features="hashed", hash_bits=10), 0.0)
    processor.process(records([{"features": {"a": 1}, "label": 1}]), 1.0)
    snapshot = json.loads(processor.snapshot_record().value)  # type: ignore[union-attr]
    for settings, said in [
        (Settings(features="hashed", hash_bits=11), "--features hashed (--hash-bits 10, --hash-seed 0)"),
        (Settings(features="open"), "--features hashed"),
        (Settings(), "--features hashed"),
    ]:
        with pytest.raises(Exception, match=r"trained with " + said.replace("(", r"\(").replace(")", r"\)")):
            Processor.restored(settings, snapshot, 0.0, lambda positions: None)


@pytest.mark.parametrize(
    "flags",
    [
        ["--features", "open", "--standardize"],
        ["--features", "open", "--optimizer", "adagrad", "--learning-rate", "0.01,0.1", "--delay", "7"],
        ["--features", "hashed", "--hash-bits", "6", "--hash-seed", "2"],
        ["--features", "hashed", "--standardize", "--l1", "0.001", "--model", "logistic"],
        ["--features", "open", "--model", "perceptron"],
    ],
)
def test_check_river_replays_a_file_of_open_features(tmp_path: Any, flags: list[str]) -> None:
    events, y = open_stream(300, seed=32)
    path = tmp_path / "events.jsonl"
    path.write_text(
        "".join(
            json.dumps({"features": x, "label": int(label)}) + "\n"
            for x, label in zip(events, y, strict=True)
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "stream_neuron", "check-river", "--file", str(path), *flags],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith("agree") and f"features {flags[1]}" in done.stdout


@pytest.mark.parametrize(("touched", "form"), [(3, "list"), (700, "bits"), (1024, "all")])
def test_a_sparse_snapshot_says_which_features_it_holds_in_its_smallest_form(touched: int, form: str) -> None:
    """A few features touched: their indices listed; most of them: a bit per feature; all: no index.
    Each loads back to the same arrays; an index that is not one is refused by name."""
    from stream_neuron import LogisticNeuron
    from stream_neuron.neuron.sparse_rows import SparseRows

    rng = np.random.default_rng(touched)
    model = LogisticNeuron(1024, 0.1, sparse=True)
    which = rng.choice(1024, size=touched, replace=False)
    rows = SparseRows.from_dicts([{int(i): float(rng.normal()) for i in which}] * 3)
    model.score_then_learn(rows, np.array([1.0, 0.0, 1.0]))
    state = model.sparse_state()
    index = state["index"]
    assert form == ("all" if index is None else "bits" if isinstance(index, dict) else "list")
    weights, _, _ = LogisticNeuron.loaded_sparse_state(state, 1024)
    np.testing.assert_array_equal(weights, model.weights)
    assert np.count_nonzero(weights) == touched
    if form == "bits":
        bad_bits: list[tuple[Any, str]] = [
            ({"bits": index["bits"][:-8]}, "are not 1024 bits"),
            ({"bits": "not base64!"}, "not base64"),
            ({"bits": index["bits"], "more": 1}, 'must be {"bits": base64}'),
        ]
        for bad, reason in bad_bits:
            with pytest.raises(ValueError, match=reason.replace("{", r"\{").replace("}", r"\}")):
                LogisticNeuron.loaded_sparse_state({**state, "index": bad}, 1024)
        with pytest.raises(ValueError, match="mark features past 1019"):
            LogisticNeuron.loaded_sparse_state(state, 1020)


def test_snapshots_that_reuse_their_buffers_hold_each_moment_s_arrays() -> None:
    """A model's snapshots reuse their buffers (the features held, the entries at them): each holds
    the arrays of its own moment, as the features touched grow past a listed index to a bitmap, with
    the scaler's counts (8-byte integers) through the same buffer as its floats; a snapshot already
    taken keeps its numbers while the model learns on and snapshots again."""
    from stream_neuron import LogisticNeuron
    from stream_neuron.neuron.sparse_rows import SparseRows

    rng = np.random.default_rng(11)
    model = LogisticNeuron(1024, 0.1, sparse=True, standardize=True)
    taken: list[tuple[dict[str, Any], dict[str, np.ndarray]]] = []
    for touched in (3, 40, 300, 700, 20):
        which = rng.choice(1024, size=touched, replace=False)
        rows = SparseRows.from_dicts([{int(i): float(rng.normal()) for i in which} for _ in range(3)])
        model.score_then_learn(rows, np.array([1.0, 0.0, 1.0]))
        scaler = model.sparse_scaler
        assert scaler is not None
        now = {"weights": model.weights.copy(), "counts": scaler.counts.copy(), "mean": scaler.mean.copy()}
        state = model.sparse_state()
        assert state == LogisticNeuron.from_dict(model.to_dict()).sparse_state()  # a fresh model's
        assert all(text.raw == text.encode("ascii") for text in state.values() if hasattr(text, "raw"))
        taken.append((state, now))
    listed, bits, last = taken[0][0]["index"], taken[-2][0]["index"], taken[-1][0]["index"]
    assert isinstance(listed, str) and isinstance(bits, dict) and last is not None
    for state, then in taken:
        weights, loaded, _ = LogisticNeuron.loaded_sparse_state(state, 1024)
        assert loaded is not None
        np.testing.assert_array_equal(weights, then["weights"])
        np.testing.assert_array_equal(loaded.counts, then["counts"])
        np.testing.assert_array_equal(loaded.mean, then["mean"])


def test_a_snapshot_with_packed_arrays_is_written_as_json_dumps_writes_it() -> None:
    """The packed arrays copied in whole give the very bytes json.dumps gives, nested in candidates
    too; a number JSON cannot hold is still refused; text that looks like the writer's token is kept."""
    from stream_neuron.snapshots import snapshot_json

    processor = Processor(Settings(features="hashed", hash_bits=16, learning_rate=(0.1, 0.01)), 0.0)
    rng = np.random.default_rng(4)
    ids = [{f"id{k}": f"u{rng.integers(10**6)}" for k in range(20)} for _ in range(300)]
    processor.process(records(labelled(ids, rng.integers(0, 2, size=300))), 1.0)
    state = processor.snapshot_state()
    assert len(json.dumps(state)) > 100_000 and "candidates" in state
    state["note"] = '"packed-0123456789abcdef0123456789abcdef-0"'
    assert snapshot_json(state) == json.dumps(state, allow_nan=False).encode()
    assert snapshot_json({"a": [1.5, {"b": "x"}]}) == json.dumps({"a": [1.5, {"b": "x"}]}).encode()
    with pytest.raises(ValueError, match="not JSON compliant"):
        snapshot_json({**state, "bias": float("nan")})
