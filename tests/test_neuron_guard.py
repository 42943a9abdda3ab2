"""The neuron never becomes non-finite: a row whose logit or step would not be finite changes nothing,
by category of poison (magnitudes, signs, positions, one feature or all, with and without the scaler,
per event and per mini-batch), on both kernels."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stream_neuron import LogisticNeuron, Perceptron
from stream_neuron.neuron.linear import LinearNeuron
from stream_neuron.neuron.refusals import ACCEPTED, REFUSED_SCORE, REFUSED_STEP
from tests.datasets import synthetic

pytestmark = pytest.mark.usefixtures("kernel")

BIG = 1.7e308


def poison(kind: str, d: int, rng: np.random.Generator) -> np.ndarray:
    row = rng.normal(size=d)
    if kind == "all 1e300":
        row[:] = 1e300
    elif kind == "one -1e300":
        row[rng.integers(d)] = -1e300
    elif kind == "one near the float64 limit":
        row[rng.integers(d)] = BIG
    elif kind == "mixed signs 1e308":
        row[:] = np.where(np.arange(d) % 2, 1e308, -1e308)
    elif kind == "1e200":
        row[:] = 1e200
    return row


KINDS = ["all 1e300", "one -1e300", "one near the float64 limit", "mixed signs 1e308", "1e200"]
MODELS = [
    (LogisticNeuron, {"learning_rate": 0.05}),
    (LogisticNeuron, {"learning_rate": 0.5, "standardize": True}),
    (LogisticNeuron, {"learning_rate": 1e6, "schedule": "invscaling"}),
    (Perceptron, {"learning_rate": 1.0}),
    (Perceptron, {"learning_rate": 1.0, "standardize": True}),
]


def state_is_finite(model: LinearNeuron) -> bool:
    state = json.dumps(model.to_dict())  # a non-finite number would be written as NaN or Infinity
    return "NaN" not in state and "Infinity" not in state


def stream_with_poison(kind: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X, y = synthetic(300, 5, seed=seed, unlabelled_fraction=0.1)
    at = np.sort(rng.choice(300, size=12, replace=False))
    for i in at:
        X[i] = poison(kind, 5, rng)
    return X, y, at


@pytest.mark.parametrize(("cls", "kwargs"), MODELS)
@pytest.mark.parametrize("kind", KINDS)
def test_per_event_refuses_what_would_not_be_finite_and_equals_learning_without_it(
    cls: type[LinearNeuron], kwargs: dict, kind: str
) -> None:
    X, y, at = stream_with_poison(kind, seed=len(kind))
    model = cls(5, **kwargs)
    refused = np.empty(300, dtype=np.int8)
    outputs = np.concatenate(
        [
            model.score_then_learn(X[s : s + 64], y[s : s + 64], None, refused[s : s + 64])
            for s in range(0, 300, 64)
        ]
    )
    assert state_is_finite(model)
    assert set(np.unique(refused)) <= {ACCEPTED, REFUSED_SCORE, REFUSED_STEP}
    assert np.isnan(outputs[refused != ACCEPTED]).all() and np.isfinite(outputs[refused == ACCEPTED]).all()
    # The refused rows changed nothing: the same stream without them gives the same model, row for row.
    kept = refused == ACCEPTED
    replay = cls(5, **kwargs)
    np.testing.assert_array_equal(replay.score_then_learn(X[kept], y[kept]), outputs[kept])
    np.testing.assert_array_equal(replay.weights, model.weights)
    assert (replay.bias, replay.n_updates) == (model.bias, model.n_updates)
    assert {int(code) for code in refused[at]} <= {ACCEPTED, REFUSED_SCORE, REFUSED_STEP}
    # One at a time, learn_one refuses the same rows with a ValueError and no change.
    one = cls(5, **kwargs)
    for row, label, code in zip(X, y, refused, strict=True):
        if np.isnan(label):
            continue
        before = json.dumps(one.to_dict())
        if code == ACCEPTED:
            one.learn_one(row, label)
        else:
            with pytest.raises(ValueError, match=r"not finite|non-finite"):
                one.learn_one(row, label)
            assert json.dumps(one.to_dict()) == before
    # learn_one is the numpy reference: equal to the compiled kernel to rounding.
    np.testing.assert_allclose(one.weights, model.weights, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("cls", "kwargs"), MODELS)
@pytest.mark.parametrize("kind", KINDS)
def test_a_mini_batch_leaves_out_the_rows_it_cannot_take(
    cls: type[LinearNeuron], kwargs: dict, kind: str
) -> None:
    X, y, _ = stream_with_poison(kind, seed=7 + len(kind))
    model = cls(5, **kwargs)
    reference = cls(5, **kwargs)
    for start in range(0, 300, 32):
        Xb, yb = X[start : start + 32], y[start : start + 32]
        refused = np.empty(len(yb), dtype=np.int8)
        model.score_then_learn_batch(Xb, yb, None, refused)
        assert state_is_finite(model)
        # As if the refused rows had never come: the same batch step over the rows taken.
        taken = (refused == ACCEPTED) & ~np.isnan(yb)
        if taken.any():
            reference.score_then_learn_batch(Xb[taken], yb[taken])
    np.testing.assert_array_equal(model.weights, reference.weights)
    assert model.n_updates == reference.n_updates


def test_a_batch_step_refused_whole_changes_nothing() -> None:
    model = LogisticNeuron(2, learning_rate=1e300)
    model.learn_one([1.0, 1.0], 1)
    before = json.dumps(model.to_dict())
    with pytest.raises(ValueError, match="non-finite"):
        model.learn_batch([[1e10, 1e10], [-1e10, 1e10]], [0, 1])
    assert json.dumps(model.to_dict()) == before


def test_a_refused_row_is_as_if_it_never_came_even_for_the_scaler() -> None:
    model = LogisticNeuron(2, learning_rate=0.1, standardize=True)
    model.score_then_learn([[1.0, 2.0], [3.0, 1.0]], [1, 0])
    scaler_before = model.scaler.to_dict() if model.scaler else None
    refused = np.empty(1, dtype=np.int8)
    model.score_then_learn([[1e308, -1e308]], [1], None, refused)
    assert refused.tolist() in ([REFUSED_SCORE], [REFUSED_STEP])
    assert model.scaler is not None and model.scaler.to_dict() == scaler_before
