"""river's optimizers and penalties, exactly: AdaGrad, Adam, L2 and L1 against river's
``LogisticRegression`` with the same settings, per event (``learn_one``) and per mini-batch
(``learn_many``), on Phishing and on generated data; weights to 1e-9 and the same progressive
accuracy. The perceptron takes what river's takes (plain SGD, an L2 penalty)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from river import compose, linear_model, optim, preprocessing

from stream_neuron import LogisticNeuron, Perceptron
from tests.datasets import phishing, synthetic

pytestmark = pytest.mark.usefixtures("kernel")
TOL = 1e-9

RULES: list[dict[str, Any]] = [
    {"optimizer": "adagrad"},
    {"optimizer": "adam"},
    {"optimizer": "sgd", "l2": 0.01},
    {"optimizer": "sgd", "l1": 0.001},
    {"optimizer": "adam", "l2": 0.001},
    {"optimizer": "adagrad", "l1": 0.0005},
]
IDS = ["adagrad", "adam", "l2", "l1", "adam-l2", "adagrad-l1"]


def river_optimizer(name: str, lr: float) -> optim.base.Optimizer:
    return {"sgd": optim.SGD, "adagrad": optim.AdaGrad, "adam": optim.Adam}[name](lr)


def river_model(rule: dict[str, Any], lr: float) -> linear_model.LogisticRegression:
    return linear_model.LogisticRegression(
        river_optimizer(rule["optimizer"], lr),
        l2=rule.get("l2", 0.0),
        l1=rule.get("l1", 0.0),
        intercept_lr=lr,
    )


def datasets() -> list[tuple[str, list[str], list[dict[str, float]], np.ndarray, np.ndarray]]:
    names, rows, X, y = phishing()
    Xs, ys = synthetic(2_000, 5, seed=21)
    generated = [dict(zip(map(str, range(5)), row.tolist(), strict=True)) for row in Xs]
    return [("phishing", names, rows, X, y), ("generated", list(map(str, range(5))), generated, Xs, ys)]


@pytest.mark.parametrize("rule", RULES, ids=IDS)
@pytest.mark.parametrize("standardize", [False, True])
def test_per_event_equals_river_learn_one(rule: dict[str, Any], standardize: bool) -> None:
    lr = 0.05
    for _, names, rows, X, y in datasets():
        ours = LogisticNeuron(len(names), learning_rate=lr, standardize=standardize, **rule)
        p = ours.score_then_learn(X, y)
        river: Any = river_model(rule, lr)
        if standardize:
            river = compose.Pipeline(preprocessing.StandardScaler(), river)
        correct = 0
        for x, label in zip(rows, y, strict=True):
            correct += river.predict_one(x) == bool(label)
            river.learn_one(x, bool(label))
        fitted = river["LogisticRegression"] if standardize else river
        np.testing.assert_allclose(
            ours.weights, [fitted.weights.get(k, 0.0) for k in names], rtol=0, atol=TOL
        )
        assert ours.bias == pytest.approx(fitted.intercept, abs=TOL)
        assert int(np.sum((p > 0.5) == (y == 1))) == correct


@pytest.mark.parametrize("rule", RULES, ids=IDS)
def test_mini_batches_equal_river_learn_many(rule: dict[str, Any]) -> None:
    lr, batch = 0.05, 16
    for _, names, _, X, y in datasets():
        ours = LogisticNeuron(len(names), learning_rate=lr, **rule)
        river = river_model(rule, lr)
        for start in range(0, len(y), batch):
            Xb, yb = X[start : start + batch], y[start : start + batch]
            ours.learn_batch(Xb, yb)
            river.learn_many(pd.DataFrame(Xb, columns=names), pd.Series(yb.astype(bool)))
        np.testing.assert_allclose(ours.weights, [river.weights.get(k, 0.0) for k in names], rtol=0, atol=TOL)
        assert ours.bias == pytest.approx(river.intercept, abs=TOL)


def test_the_rule_and_its_state_survive_a_snapshot_round_trip() -> None:
    _, _, X, y = phishing()
    for rule in RULES:
        whole = LogisticNeuron(9, learning_rate=0.05, **rule)
        whole.score_then_learn(X, y)
        half = LogisticNeuron(9, learning_rate=0.05, **rule)
        half.score_then_learn(X[:600], y[:600])
        restored = LogisticNeuron.from_dict(half.to_dict())
        restored.score_then_learn(X[600:], y[600:])
        np.testing.assert_array_equal(restored.weights, whole.weights)


def test_the_perceptron_takes_what_river_s_takes() -> None:
    names, rows, X, y = phishing()
    ours = Perceptron(9, l2=0.01)
    river = linear_model.Perceptron(l2=0.01)
    for x, row, label in zip(rows, X, y, strict=True):
        assert (ours.predict(row) == 1) == river.predict_one(x)
        ours.learn_one(row, label)
        river.learn_one(x, bool(label))
    np.testing.assert_allclose(ours.weights, [river.weights[k] for k in names], rtol=0, atol=TOL)
    for refused in ({"optimizer": "adam"}, {"optimizer": "adagrad"}, {"l1": 0.01}):
        with pytest.raises(ValueError, match="plain SGD"):
            Perceptron(9, **refused)


def test_l1_and_l2_together_are_refused_as_river_refuses_them() -> None:
    with pytest.raises(ValueError, match="together"):
        LogisticNeuron(3, l1=0.1, l2=0.1)
    with pytest.raises(NotImplementedError):
        linear_model.LogisticRegression(l1=0.1, l2=0.1)
