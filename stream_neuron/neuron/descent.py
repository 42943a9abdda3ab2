"""Batch and mini-batch gradient descent over a whole training set, in numpy (``stream-neuron fit``).

Batch gradient descent takes ONE step per epoch with the mean gradient of the whole set; mini-batch
descent one step per batch (8, 32, ...), over a reshuffle of the set each epoch drawn from a seeded
generator (so a fit is reproducible). Each step is the model's own ``learn_batch`` (the update rule
the stream uses, river's ``learn_many``), so what ``fit`` learns continues exactly under ``run``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from stream_neuron.neuron.linear import LinearNeuron
from stream_neuron.neuron.numeric import FloatArray
from stream_neuron.neuron.sparse_rows import SparseRows


@dataclass
class Descent:
    """What a fit did: the cost before the first step and after each epoch (mean loss over the set), and
    how it ended. ``diverged``: the rate overshot: the model's numbers left the floats, or (log loss)
    the cost ended above where it started."""

    initial: float = math.nan
    costs: list[float] = field(default_factory=list)
    accuracies: list[float] = field(default_factory=list)
    diverged: bool = False
    overflowed: bool = False  # stopped because the next step's numbers were not finite
    converged: bool = False

    @property
    def epochs(self) -> int:
        return len(self.costs)


def mean_cost(model: LinearNeuron, X: FloatArray | SparseRows, y: FloatArray) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` over the set (the model's own loss: log loss, or the
    perceptron criterion)."""
    z = model.decision_function(X) if isinstance(X, SparseRows) else X @ model.weights + model.bias
    loss, correct = model.prequential_terms(z, model.outputs(z), y)
    return loss / len(y), correct / len(y)


def descend(
    model: LinearNeuron,
    X: FloatArray | SparseRows,
    y: FloatArray,
    epochs: int,
    batch_size: int | None = None,
    seed: int = 0,
    tol: float | None = None,
    on_epoch: Callable[[int, float, float], None] = lambda epoch, cost, accuracy: None,
) -> Descent:
    """Train ``model`` on ``X`` (already scaled, when scaling) and labels ``y`` for up to ``epochs``.

    ``batch_size`` ``None`` (or the set's size) is batch gradient descent; smaller is mini-batch.
    Stops early when the cost changes by less than ``tol``, or when a step would make the model
    non-finite or the cost is no longer finite (the rate diverged): the model keeps its last
    finite state.

    >>> import numpy as np
    >>> from stream_neuron import LogisticNeuron
    >>> X, y = np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0.0, 1.0, 0.0, 1.0])
    >>> [descend(LogisticNeuron(1, learning_rate=r), X, y, epochs=20).diverged for r in (1.0, 100.0)]
    [False, True]
    """
    n = len(y)
    size = n if batch_size is None else min(batch_size, n)
    rng = np.random.default_rng(seed)
    result = Descent(initial=mean_cost(model, X, y)[0])
    for epoch in range(1, epochs + 1):
        order = np.arange(n) if size == n else rng.permutation(n)
        try:
            for start in range(0, n, size):
                rows = order[start : start + size]
                if size == n:
                    model.learn_batch(X, y)
                else:
                    model.learn_batch(X[rows], y[rows])
        except ValueError:  # the step would have made the model non-finite
            result.diverged = result.overflowed = True
            break
        cost, accuracy = mean_cost(model, X, y)
        if not math.isfinite(cost):
            result.diverged = result.overflowed = True
            break
        previous = result.costs[-1] if result.costs else None
        result.costs.append(cost)
        result.accuracies.append(accuracy)
        on_epoch(epoch, cost, accuracy)
        if tol is not None and previous is not None and abs(previous - cost) < tol:
            result.converged = True
            break
    if model.probabilistic and result.costs and result.costs[-1] > result.initial:
        # The perceptron is left out: its criterion is 0 for the zero model and scales with the rate.
        result.diverged = True
    return result
