"""The classic perceptron: a step at 0, output +1/-1, an update only on a mistake."""

from __future__ import annotations

import numpy as np

from stream_neuron.neuron.linear import LinearNeuron
from stream_neuron.neuron.losses import PerceptronLoss
from stream_neuron.neuron.numeric import FloatArray
from stream_neuron.neuron.optimizers import Rule


class Perceptron(LinearNeuron):
    """Rosenblatt's perceptron: ``+1`` when ``w . x + b > 0``, else ``-1``.

    Labels are accepted as {0, 1} or {-1, +1} (0 means -1). On a mistake (``y * z <= 0``, so the
    zero-initialised model learns from its first event): ``w += lr * y * x`` and ``b += lr * y``.
    Matches ``river.linear_model.Perceptron`` (whose rate is 1, this model's default). The learning
    rate, its schedule and the scaler work as for :class:`LogisticNeuron`; from zero weights a constant
    rate only scales the weights, so it changes the predictions only through exact ties at 0.

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
    loss = PerceptronLoss()
    labels = (-1.0, 0.0, 1.0)
    label_domain = "-1/+1 or 0/1 (or true/false)"
    default_learning_rate = 1.0
    probabilistic = False

    @classmethod
    def checked_rule(cls, rule: Rule) -> Rule:
        """river's Perceptron is plain SGD, with an optional L2 penalty: nothing else is offered."""
        if rule.optimizer != "sgd" or rule.l1:
            raise ValueError("the perceptron learns by plain SGD (with an optional l2), as river's does")
        return rule

    def outputs(self, z: FloatArray) -> FloatArray:
        return np.where(z > 0, 1.0, -1.0)

    def predicted_labels(self, outputs: FloatArray) -> FloatArray:
        return outputs
