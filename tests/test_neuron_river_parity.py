"""The neuron against river 0.26, the reference implementation, on river's Phishing data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from river import compose, linear_model, optim, preprocessing

from stream_neuron import LogisticNeuron, Perceptron
from stream_neuron.neuron.losses import LogLoss
from tests.datasets import confident_mistakes, phishing, river_phishing_correct

pytestmark = pytest.mark.usefixtures("kernel")

TOL = 1e-12


def river_weights(model: linear_model.LogisticRegression, names: list[str]) -> np.ndarray:
    return np.array([model.weights.get(k, 0.0) for k in names])


@pytest.mark.parametrize("lr", [0.01, 0.1, 1.0])
def test_learn_one_equals_river_logistic_regression(lr: float) -> None:
    names, rows, X, y = phishing()
    ours = LogisticNeuron(n_features=9, learning_rate=lr)
    river = linear_model.LogisticRegression(optimizer=optim.SGD(lr), intercept_lr=lr)
    for x, row, label in zip(rows, X, y, strict=True):
        assert ours.predict_proba(row) == pytest.approx(river.predict_proba_one(x)[True], abs=TOL)
        ours.learn_one(row, label)
        river.learn_one(x, bool(label))
    np.testing.assert_allclose(ours.weights, river_weights(river, names), rtol=0, atol=TOL)
    assert ours.bias == pytest.approx(river.intercept, abs=TOL)
    assert ours.n_updates == len(y)


@pytest.mark.parametrize("y", [0.0, 1.0])
def test_the_per_event_log_gradient_is_rivers_at_every_margin(y: float) -> None:
    """river's Log.gradient is e^-m beyond a margin of 18 and exactly 1 below -18 (the model
    confidently wrong), where sigmoid(z) - y differs by up to 1.5e-8."""
    river_loss = optim.losses.Log()
    for z in (-800.0, -40.0, -18.5, -18.0, -17.99, -3.0, -1e-300, 0.0, 2.5, 18.0, 18.01, 25.0, 800.0):
        assert LogLoss().gradient_one(z, y) == river_loss.gradient(bool(y), z), z


@pytest.mark.parametrize("lr", [0.02, 0.05])
def test_confident_mistakes_under_a_large_rate_equal_river_bit_for_bit(lr: float) -> None:
    """Unscaled features and flipped labels: the model is confidently wrong about dozens of events, and
    at these rates every rounding difference grows (with sigmoid(z) - y there, or a BLAS dot product,
    the weights end 0.07 to 0.8 away from river's). Per event, the kernel and learn_one alike."""
    names, rows, X, y = confident_mistakes()
    river = linear_model.LogisticRegression(optimizer=optim.SGD(lr), intercept_lr=lr)
    wrong = 0
    for x, label in zip(rows, y, strict=True):
        wrong += (2 * label - 1) * river._raw_dot_one(x) < -18.0
        river.learn_one(x, bool(label))
    assert wrong >= 20, "the stream makes the model confidently wrong"
    stepped, learned_one = LogisticNeuron(len(names), lr), LogisticNeuron(len(names), lr)
    stepped.score_then_learn(X, y)
    for row, label in zip(X, y, strict=True):
        learned_one.learn_one(row, label)
    for ours in (stepped, learned_one):
        np.testing.assert_array_equal(ours.weights, river_weights(river, names))
        assert ours.bias == river.intercept


def test_invscaling_schedule_equals_river_inverse_scaling() -> None:
    names, rows, X, y = phishing()
    ours = LogisticNeuron(9, learning_rate=0.5, intercept_learning_rate=0.2, schedule="invscaling", power=0.6)
    river = linear_model.LogisticRegression(
        optimizer=optim.SGD(optim.schedulers.InverseScaling(0.5, power=0.6)),
        intercept_lr=optim.schedulers.InverseScaling(0.2, power=0.6),
    )
    for x, row, label in zip(rows, X, y, strict=True):
        ours.learn_one(row, label)
        river.learn_one(x, bool(label))
    np.testing.assert_allclose(ours.weights, river_weights(river, names), rtol=0, atol=TOL)
    assert ours.bias == pytest.approx(river.intercept, abs=TOL)


@pytest.mark.parametrize("batch", [1, 8, 32, 100])
def test_learn_batch_equals_river_learn_many(batch: int) -> None:
    names, _, X, y = phishing()
    ours = LogisticNeuron(9, learning_rate=0.3)
    river = linear_model.LogisticRegression(optimizer=optim.SGD(0.3), intercept_lr=0.3)
    for start in range(0, len(y), batch):
        Xb, yb = X[start : start + batch], y[start : start + batch]
        frame = pd.DataFrame(Xb, columns=names)
        np.testing.assert_allclose(ours.predict_proba(Xb), river.predict_proba_many(frame)[True], atol=TOL)
        ours.learn_batch(Xb, yb)
        river.learn_many(frame, pd.Series(yb.astype(bool)))
    np.testing.assert_allclose(ours.weights, river_weights(river, names), rtol=0, atol=TOL)
    assert ours.bias == pytest.approx(river.intercept, abs=TOL)
    assert ours.n_updates == -(-len(y) // batch)


def test_perceptron_equals_river_perceptron() -> None:
    names, rows, X, y = phishing()
    ours = Perceptron(n_features=9)
    river = linear_model.Perceptron()
    for x, row, label in zip(rows, X, y, strict=True):
        assert (ours.predict(row) == 1) == river.predict_one(x)
        ours.learn_one(row, label)
        river.learn_one(x, bool(label))
    np.testing.assert_array_equal(ours.weights, river_weights(river, names))
    assert ours.bias == river.intercept


@pytest.mark.parametrize(("lr", "intercept_lr"), [(0.01, 0.01), (0.1, 0.01)])
def test_standardized_progressive_accuracy_equals_river(lr: float, intercept_lr: float) -> None:
    """river documents 89.28% and 88.96% of the 1,250 events for these two: its own replay says how many
    events that is, and ours must give the same count and the same weights."""
    names, rows, X, y = phishing()
    ours = LogisticNeuron(9, learning_rate=lr, intercept_learning_rate=intercept_lr, standardize=True)
    p = ours.score_then_learn(X, y)
    assert int(np.sum((p > 0.5) == (y == 1))) == river_phishing_correct(lr, intercept_lr)

    pipeline = compose.Pipeline(
        preprocessing.StandardScaler(),
        linear_model.LogisticRegression(optim.SGD(lr), intercept_lr=intercept_lr),
    )
    for x, label in zip(rows, y, strict=True):
        pipeline.learn_one(x, bool(label))
    np.testing.assert_allclose(ours.weights, river_weights(pipeline["LogisticRegression"], names), atol=TOL)
    scaler = pipeline["StandardScaler"]
    assert ours.scaler is not None
    np.testing.assert_array_equal(ours.scaler.mean, [scaler.means[k] for k in names])
    np.testing.assert_array_equal(ours.scaler.var, [scaler.vars[k] for k in names])
