"""The neuron's own contract: hot paths equal the step-by-step definitions, gradients, the learning-rate
story, numerical safety, bad input and state round trips."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from stream_neuron import LogisticNeuron, Perceptron
from stream_neuron.neuron.linear import LinearNeuron
from tests.datasets import phishing, synthetic

pytestmark = pytest.mark.usefixtures("kernel")

CONFIGS = [
    {"learning_rate": 0.05},
    {"learning_rate": 0.5, "intercept_learning_rate": 0.1, "schedule": "invscaling", "power": 0.5},
    {"learning_rate": 0.05, "standardize": True},
    {"learning_rate": 1.0, "schedule": "invscaling", "standardize": True},
]


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("n_rows", [1, 11, 12, 13, 500, 517])
def test_score_then_learn_equals_predict_then_learn_one(config: dict, n_rows: int) -> None:
    X, y = synthetic(n_rows, 7, seed=n_rows, unlabelled_fraction=0.2)
    fast = LogisticNeuron(7, **config)
    slow = LogisticNeuron(7, **config)
    scores = np.empty(n_rows)
    p_fast = fast.score_then_learn(X, y, scores)
    p_slow = []
    for row, label in zip(X, y, strict=True):
        p_slow.append(slow.predict_proba(row))
        if not np.isnan(label):
            slow.learn_one(row, label)
    np.testing.assert_allclose(p_fast, p_slow, rtol=0, atol=1e-12)
    np.testing.assert_allclose(scores, np.log(np.array(p_slow) / (1 - np.array(p_slow))), atol=1e-9)
    np.testing.assert_allclose(fast.weights, slow.weights, rtol=0, atol=1e-12)
    assert fast.bias == pytest.approx(slow.bias, abs=1e-12)
    assert fast.n_updates == slow.n_updates == int(np.sum(~np.isnan(y)))


@pytest.mark.parametrize("config", CONFIGS)
def test_score_then_learn_batch_equals_predict_then_learn_batch(config: dict) -> None:
    X, y = synthetic(320, 5, seed=3, unlabelled_fraction=0.3)
    fast = LogisticNeuron(5, **config)
    slow = LogisticNeuron(5, **config)
    for start in range(0, 320, 32):
        Xb, yb = X[start : start + 32], y[start : start + 32]
        expected = slow.predict_proba(Xb)
        labelled = ~np.isnan(yb)
        slow.learn_batch(Xb[labelled], yb[labelled])
        np.testing.assert_allclose(fast.score_then_learn_batch(Xb, yb), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fast.weights, slow.weights, rtol=0, atol=1e-12)
    assert fast.n_updates == slow.n_updates == 10


def test_unlabelled_rows_change_nothing() -> None:
    X, _ = synthetic(40, 4)
    model = LogisticNeuron(4, learning_rate=0.1, standardize=True)
    before = model.to_dict()
    model.score_then_learn(X, np.full(40, np.nan))
    model.score_then_learn_batch(X, np.full(40, np.nan))
    assert model.to_dict() == before


def test_gradient_matches_finite_differences() -> None:
    X, y = synthetic(64, 6, seed=5)
    model = LogisticNeuron(6, learning_rate=1.0)
    rng = np.random.default_rng(1)
    state = model.to_dict() | {"weights": rng.normal(size=6).tolist(), "bias": 0.3}
    model.load_dict(state)
    # One mean-gradient step with rate 1 moves the parameters by minus the gradient of the cost.
    stepped = LogisticNeuron.from_dict(state)
    stepped.learn_batch(X, y)
    analytic = np.append(model.weights - stepped.weights, model.bias - stepped.bias)
    numeric = np.empty(7)
    h = 1e-6
    for i in range(7):
        plus, minus = LogisticNeuron.from_dict(state), LogisticNeuron.from_dict(state)
        for probe, sign in ((plus, 1), (minus, -1)):
            shifted = dict(state, weights=list(state["weights"]))
            if i < 6:
                shifted["weights"][i] += sign * h
            else:
                shifted["bias"] += sign * h
            probe.load_dict(shifted)
        numeric[i] = (plus.cost(X, y) - minus.cost(X, y)) / (2 * h)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize(
    ("lr", "check"),
    [
        (1e-4, lambda cost, norm: abs(cost - math.log(2)) < 0.05),  # too small: barely moves from ln 2
        (0.1, lambda cost, norm: cost < 0.3),  # about right: converges
        (100.0, lambda cost, norm: norm > 100 and cost > 1.0),  # too large: bounces, weights blow up
    ],
)
def test_learning_rate_story_on_standardized_phishing(lr: float, check) -> None:  # type: ignore[no-untyped-def]
    _, _, X, y = phishing()
    model = LogisticNeuron(9, learning_rate=lr, standardize=True)
    p = model.score_then_learn(X, y)
    cost, norm = model.cost(X, y), float(np.linalg.norm(model.weights))
    assert np.isfinite(p).all() and np.isfinite(model.weights).all() and math.isfinite(cost)
    assert check(cost, norm), (cost, norm)


def test_sigmoid_and_log_loss_are_safe_for_huge_logits() -> None:
    model = LogisticNeuron(1, learning_rate=1.0)
    model.load_dict(model.to_dict() | {"weights": [1.0]})
    X = np.array([[1e6], [-1e6], [0.0]])
    assert model.predict_proba(X).tolist() == [1.0, 0.0, 0.5]
    assert model.cost(X[:2], [0, 1]) == pytest.approx(1e6)
    assert model.cost(X[:2], [1, 0]) == 0.0
    model.learn_batch(X, [0, 1, 1])
    model.score_then_learn(X, [0, 1, np.nan])
    assert np.isfinite(model.weights).all() and math.isfinite(model.bias)


BAD_INPUTS = [
    ("nan feature", [[1.0, np.nan]], [1], "finite"),
    ("inf feature", [[np.inf, 1.0]], [1], "finite"),
    ("-inf at zero weights", [[0.0, -np.inf]], [0], "finite"),
    ("too few features", [[1.0]], [1], "expected 2 features"),
    ("too many features", [[1.0, 2.0, 3.0]], [1], "expected 2 features"),
    ("3-d input", [[[1.0, 2.0]]], [1], "expected 2 features"),
    ("label out of domain", [[1.0, 2.0]], [2], "label 2"),
    ("fractional label", [[1.0, 2.0]], [0.5], "label 0.5"),
    ("label count", [[1.0, 2.0], [1.0, 2.0]], [1], "expected 2 labels"),
]


@pytest.mark.parametrize("cls", [LogisticNeuron, Perceptron])
@pytest.mark.parametrize(("case", "X", "y", "message"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_raises_value_error_and_changes_nothing(
    cls: type[LinearNeuron], case: str, X, y, message: str
) -> None:  # type: ignore[no-untyped-def]
    model = cls(2, learning_rate=0.5, standardize=True)
    model.learn_one([0.3, -0.2], 1)
    before = json.dumps(model.to_dict())
    calls = [lambda: model.score_then_learn(X, y), lambda: model.score_then_learn_batch(X, y)]
    if "label" not in case:
        calls.append(lambda: model.predict(X))
    if case not in ("label count", "3-d input"):
        calls.append(lambda: model.learn_one(np.asarray(X, dtype=float).reshape(-1), y[0]))
        calls.append(lambda: model.learn_batch(X, y))
    for call in calls:
        with pytest.raises(ValueError, match=message):
            call()
        assert json.dumps(model.to_dict()) == before


def test_nan_label_is_rejected_outside_the_hot_paths() -> None:
    model = LogisticNeuron(2, learning_rate=0.1)
    with pytest.raises(ValueError, match="label nan"):
        model.learn_one([1.0, 2.0], float("nan"))
    with pytest.raises(ValueError, match="label nan"):
        model.learn_batch([[1.0, 2.0]], [float("nan")])


@pytest.mark.parametrize("cls", [LogisticNeuron, Perceptron])
def test_state_round_trip_is_exact(cls: type[LinearNeuron]) -> None:
    X, y = synthetic(300, 4, seed=9)
    kwargs = {"learning_rate": 0.3, "standardize": True}
    if cls is LogisticNeuron:
        kwargs |= {"schedule": "invscaling", "intercept_learning_rate": 0.05}
    model = cls(4, **kwargs)
    model.score_then_learn(X[:150], y[:150])
    restored = cls.from_dict(json.loads(json.dumps(model.to_dict())))
    assert restored.to_dict() == model.to_dict()
    model.score_then_learn(X[150:], y[150:])
    restored.score_then_learn(X[150:], y[150:])
    np.testing.assert_array_equal(model.weights, restored.weights)
    assert model.bias == restored.bias and model.n_updates == restored.n_updates


def test_state_of_another_kind_or_size_is_refused() -> None:
    state = LogisticNeuron(3, learning_rate=0.1).to_dict()
    with pytest.raises(ValueError, match="logistic"):
        Perceptron(3).load_dict(state)
    with pytest.raises(ValueError, match="3 finite numbers"):
        LogisticNeuron(3, learning_rate=0.1).load_dict(state | {"weights": [0.0, 1.0]})


def test_perceptron_accepts_both_label_conventions() -> None:
    X, y01 = synthetic(200, 3, seed=4)
    a, b = Perceptron(3), Perceptron(3)
    a.score_then_learn(X, y01)
    y_pm = np.where(y01 == 1, 1.0, -1.0)
    b.score_then_learn(X, y_pm)
    np.testing.assert_array_equal(a.weights, b.weights)
    assert set(np.unique(a.predict(X))) <= {-1, 1}
    assert (y01 == 0).sum() > 0 and y01.tolist() == synthetic(200, 3, seed=4)[
        1
    ].tolist()  # caller's array untouched


def test_perceptron_score_then_learn_equals_loop() -> None:
    X, y = synthetic(250, 4, seed=2, unlabelled_fraction=0.1)
    fast, slow = Perceptron(4, learning_rate=0.5), Perceptron(4, learning_rate=0.5)
    got = fast.score_then_learn(X, y)
    expected = []
    for row, label in zip(X, y, strict=True):
        expected.append(slow.predict(row))
        if not np.isnan(label):
            slow.learn_one(row, label)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_allclose(fast.weights, slow.weights, atol=1e-12)
    assert fast.n_updates == slow.n_updates


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="n_features"):
        LogisticNeuron(0, learning_rate=0.1)
    with pytest.raises(ValueError, match="learning rate"):
        LogisticNeuron(2, learning_rate=-1.0)
    with pytest.raises(ValueError, match="unknown schedule"):
        LogisticNeuron(2, learning_rate=0.1, schedule="cosine")  # type: ignore[arg-type]
