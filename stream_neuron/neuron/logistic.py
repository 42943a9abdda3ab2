"""The logistic neuron: ``p = sigmoid(w . x + b)``, log-loss cost, trained by gradient descent."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from stream_neuron.neuron.linear import LinearNeuron
from stream_neuron.neuron.losses import LogLoss
from stream_neuron.neuron.numeric import FloatArray, as_labels, as_matrix, log_loss_from_scores, sigmoid


class LogisticNeuron(LinearNeuron):
    """Logistic regression as one neuron, learned online.

    Zero initial weights; ``intercept_learning_rate`` defaults to ``learning_rate`` (0.05). With
    ``standardize=True`` an online standard scaler sits in front, in river's pipeline order.
    ``schedule`` is ``"constant"`` or ``"invscaling"`` (``lr / (t + 1) ** power``, ``t`` counting
    updates). Matches ``river.linear_model.LogisticRegression(optimizer=optim.SGD(lr),
    intercept_lr=lr)`` step for step.

    >>> m = LogisticNeuron(n_features=2, learning_rate=0.5)
    >>> float(m.predict_proba([1.0, 2.0]))
    0.5
    >>> m.learn_one([1.0, 2.0], 1)
    >>> m.weights.tolist(), m.bias, m.n_updates
    ([0.25, 0.5], 0.25, 1)
    >>> m.predict([[1.0, 2.0], [-1.0, -2.0]]).tolist()
    [1, 0]
    >>> round(m.cost([[1.0, 2.0]], [1]), 6)
    0.201413

    The per-event hot path scores each row with the weights from before it; NaN marks a row that is
    only scored:

    >>> m2 = LogisticNeuron(n_features=2, learning_rate=0.5)
    >>> m2.score_then_learn([[1.0, 2.0], [1.0, 2.0]], [1, float("nan")]).round(4).tolist()
    [0.5, 0.8176]
    >>> m2.n_updates
    1
    """

    kind = "logistic"
    loss = LogLoss()
    labels = (0.0, 1.0)
    label_domain = "0 or 1 (or true/false)"
    default_learning_rate = 0.05
    probabilistic = True

    def outputs(self, z: FloatArray) -> FloatArray:
        return sigmoid(z)  # type: ignore[no-any-return]

    def predicted_labels(self, outputs: FloatArray) -> FloatArray:
        return (outputs > 0.5).astype(np.float64)

    def predict_proba(self, X: ArrayLike) -> Any:
        """P(y=1) of each row: shape (n,), or a float for a single 1-D row."""
        p = sigmoid(self.decision_function(X))
        return float(p[0]) if np.ndim(X) == 1 else p

    def cost(self, X: ArrayLike, y: ArrayLike) -> float:
        """Mean log loss (cross-entropy) of labels ``y`` in {0, 1}; finite for any finite logits."""
        rows = as_matrix(X, self.n_features)
        labels = as_labels(y, rows.shape[0], self.labels, allow_missing=False)
        return float(log_loss_from_scores(self.decision_function(rows), labels).mean())
