"""The classic perceptron: a step at 0, output +1/-1, an update only on a mistake."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from stream_neuron.neuron.linear import LinearNeuron
from stream_neuron.neuron.numeric import FloatArray


class Perceptron(LinearNeuron):
    """Rosenblatt's perceptron: ``+1`` when ``w . x + b > 0``, else ``-1``.

    Labels are accepted as {0, 1} or {-1, +1} (0 means -1). On a mistake (``y * z <= 0``, so the
    zero-initialised model learns from its first event): ``w += lr * y * x`` and ``b += lr * y``.
    Matches ``river.linear_model.Perceptron`` (whose rate is 1).

    >>> p = Perceptron(n_features=2)
    >>> p.predict([1.0, 1.0])
    -1
    >>> p.learn_one([1.0, 1.0], 1)
    >>> p.weights.tolist(), p.bias, p.predict([1.0, 1.0])
    ([1.0, 1.0], 1.0, 1)
    >>> p.learn_one([2.0, 0.0], 1)   # right already: a step of size 0
    >>> p.weights.tolist(), p.n_updates
    ([1.0, 1.0], 2)
    """

    kind = "perceptron"
    loss = "hinge"
    labels = (-1.0, 0.0, 1.0)

    def __init__(self, n_features: int, learning_rate: float = 1.0, standardize: bool = False) -> None:
        super().__init__(n_features, learning_rate, standardize=standardize)

    def _canonical_label(self, label: float) -> float:
        return -1.0 if label == 0.0 else label

    def _canonical_labels(self, labels: FloatArray) -> FloatArray:
        return np.where(labels == 0.0, -1.0, labels)

    def _outputs(self, z: FloatArray) -> FloatArray:
        return np.where(z > 0, 1.0, -1.0)

    def predict(self, X: ArrayLike) -> Any:
        """+1 above the threshold 0, -1 at or below it; an int for a single 1-D row."""
        labels = np.where(self.decision_function(X) > 0, 1, -1)
        return int(labels[0]) if np.ndim(X) == 1 else labels

    def learn_one(self, x: ArrayLike, y: float | bool) -> None:
        """Update on a mistake only."""
        self._learn_one(x, y)

    def learn_batch(self, X: ArrayLike, y: ArrayLike) -> None:
        """One step with the mean hinge gradient of the batch (river's ``learn_many``)."""
        self._learn_batch(X, y)

    def score_then_learn(
        self, X: ArrayLike, y: ArrayLike, scores_out: FloatArray | None = None
    ) -> FloatArray:
        """Per event: the +1/-1 prediction with the weights from before it, then learn from it when
        labelled (NaN = unlabelled). The logits go to ``scores_out`` when given."""
        return self._score_then_learn(X, y, scores_out)

    def score_then_learn_batch(
        self, X: ArrayLike, y: ArrayLike, scores_out: FloatArray | None = None
    ) -> FloatArray:
        """Predictions with the weights from before the batch, then one mean-gradient step."""
        return self._score_then_learn_batch(X, y, scores_out)
