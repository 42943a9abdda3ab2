"""Batch and mini-batch gradient descent (``stream-neuron fit``'s maths), without a broker: the update
rule, scikit-learn's optimum, reproducibility, divergence, and the scaler's whole-set statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from stream_neuron import LogisticNeuron, Perceptron
from stream_neuron.neuron.descent import descend, mean_cost
from stream_neuron.neuron.scaler import OnlineStandardScaler
from stream_neuron.tools.curve import draw_rates
from stream_neuron.training_set import scaled
from tests.datasets import phishing, synthetic

pytestmark = pytest.mark.usefixtures("kernel")


def reference_batch_gd(X: np.ndarray, y: np.ndarray, lr: float, epochs: int) -> tuple[np.ndarray, float]:
    """The update rule as the lecture writes it: one step per epoch with the mean gradient."""
    w, b = np.zeros(X.shape[1]), 0.0
    for _ in range(epochs):
        p = 1.0 / (1.0 + np.exp(-(X @ w + b)))
        g = p - y
        w = w - lr * (X.T @ g) / len(y)
        b = b - lr * g.mean()
    return w, b


def test_batch_gradient_descent_is_the_update_rule() -> None:
    X, y = synthetic(500, 6, seed=3)
    model = LogisticNeuron(6, learning_rate=0.3)
    result = descend(model, X, y, epochs=50)
    w, b = reference_batch_gd(X, y, 0.3, 50)
    np.testing.assert_allclose(model.weights, w, rtol=0, atol=1e-12)
    assert model.bias == pytest.approx(b, abs=1e-12)
    assert result.epochs == 50 and model.n_updates == 50
    assert all(
        a >= c for a, c in zip(result.costs, result.costs[1:], strict=False)
    )  # a small rate only falls


def test_standardized_phishing_reaches_scikit_learn_s_optimum() -> None:
    _, _, X, y = phishing()
    scaler = OnlineStandardScaler(9)
    scaler.learn_many(X)
    Xs = scaled(X, scaler.mean, scaler.var)
    model = LogisticNeuron(9, learning_rate=4.0)
    result = descend(model, Xs, y, epochs=20_000, tol=1e-13)
    optimum = LogisticRegression(C=np.inf, tol=1e-12, max_iter=100_000).fit(Xs, y)
    reference = LogisticNeuron(9, learning_rate=1.0)
    reference.load_dict(
        reference.to_dict() | {"weights": optimum.coef_[0].tolist(), "bias": float(optimum.intercept_[0])}
    )
    ours, theirs = mean_cost(model, Xs, y)[0], mean_cost(reference, Xs, y)[0]
    distance = float(
        np.linalg.norm(np.append(model.weights - optimum.coef_[0], model.bias - optimum.intercept_[0]))
    )
    print(
        f"cost ours {ours:.12f} scikit-learn {theirs:.12f}; distance {distance:.3e}; {result.epochs} epochs"
    )
    assert ours - theirs < 1e-6 and distance < 1e-2


@pytest.mark.parametrize("l2", [0.001, 0.05])
def test_batch_descent_with_l2_reaches_scikit_learn_s_penalised_optimum(l2: float) -> None:
    """river's L2 adds ``l2 * w`` to the mean gradient: batch descent minimises the mean log loss plus
    ``l2/2 |w|^2`` (the intercept unpenalised), which is scikit-learn's objective at C = 1/(n l2)."""
    _, _, X, y = phishing()
    scaler = OnlineStandardScaler(9)
    scaler.learn_many(X)
    Xs = scaled(X, scaler.mean, scaler.var)
    model = LogisticNeuron(9, learning_rate=2.0, l2=l2)
    descend(model, Xs, y, epochs=20_000, tol=1e-15)
    optimum = LogisticRegression(C=1 / (len(y) * l2), tol=1e-12, max_iter=100_000).fit(Xs, y)
    np.testing.assert_allclose(model.weights, optimum.coef_[0], rtol=0, atol=1e-6)
    assert model.bias == pytest.approx(float(optimum.intercept_[0]), abs=1e-6)


def test_a_seeded_mini_batch_fit_is_reproducible() -> None:
    X, y = synthetic(1000, 5, seed=4)
    runs = []
    for seed in (7, 7, 8):
        model = LogisticNeuron(5, learning_rate=0.2)
        descend(model, X, y, epochs=5, batch_size=32, seed=seed)
        runs.append(model)
    np.testing.assert_array_equal(runs[0].weights, runs[1].weights)
    assert not np.array_equal(runs[0].weights, runs[2].weights)
    assert runs[0].n_updates == 5 * 32  # ceil(1000 / 32) steps an epoch


def test_a_diverging_rate_stops_with_a_finite_model() -> None:
    X, y = synthetic(200, 4, seed=5)
    model = LogisticNeuron(4, learning_rate=1e308)
    result = descend(model, X * 1e3, y, epochs=100)
    assert result.diverged and np.isfinite(model.weights).all() and np.isfinite(model.bias)


def test_the_perceptron_separates_a_separable_set() -> None:
    rng = np.random.default_rng(6)
    X = rng.normal(size=(400, 3))
    y = (X @ np.array([1.0, -2.0, 0.5]) + 0.3 > 0).astype(float)
    first = Perceptron(3)
    descend(first, X, y, epochs=1)
    mistakes = np.where(y == 1.0, 1.0, -1.0)  # a zero model errs on every row: y z = 0
    np.testing.assert_allclose(first.weights, (X.T @ mistakes) / len(y), rtol=0, atol=1e-15)
    result = descend(Perceptron(3), X, y, epochs=300)
    assert result.costs[-1] == 0.0 and result.accuracies[-1] == 1.0  # Rosenblatt's convergence


def test_whole_set_statistics_are_the_online_scaler_s() -> None:
    X, _ = synthetic(3000, 4, seed=9)
    whole, online = OnlineStandardScaler(4), OnlineStandardScaler(4)
    whole.learn_many(X)
    for row in X:
        online.learn_one(row)
    assert whole.to_dict() == online.to_dict()


def test_the_learning_rate_lesson_is_drawn(tmp_path: Path) -> None:
    _, _, X, y = phishing()
    curves = [(rate, descend(LogisticNeuron(9, learning_rate=rate), X, y, 60)) for rate in (0.001, 1, 100)]
    crawl, good, overshoot = (descent for _, descent in curves)
    assert crawl.costs[-1] > good.costs[-1] and not crawl.diverged  # too small: crawls
    assert overshoot.diverged and not overshoot.overflowed  # too large: ends above log 2, still finite
    assert overshoot.costs[-1] > overshoot.initial == pytest.approx(np.log(2))
    path = tmp_path / "lr.png"
    draw_rates(curves, path, best=1.0)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
