"""The losses a neuron descends, as objects the model plugs in (river's ``optim.losses`` style).

Each loss gives the derivative of the cost with respect to the logit ``z``; the model turns it into the
weight step (``dC/dw = dC/dz * x``). Both work on numpy arrays and on plain floats.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from stream_neuron.neuron.numeric import FloatArray, log_loss_from_scores, sigmoid


class Loss:
    """``canonical`` maps accepted labels to the loss's own; ``kernel_code`` names the loss to the
    compiled kernels (``_kernels.c``), or is ``None`` for a loss only the numpy reference computes."""

    name: ClassVar[str]
    kernel_code: ClassVar[int | None] = None

    def gradient(self, z: FloatArray | float, y: FloatArray | float) -> FloatArray | float:
        """The derivative at ``z`` as a batch's mean step takes it (river's ``learn_many``)."""
        raise NotImplementedError

    def gradient_one(self, z: float, y: float) -> float:
        """The derivative at ``z`` as one event's step takes it (river's ``learn_one``)."""
        return float(self.gradient(z, y))

    def value(self, z: FloatArray, y: FloatArray) -> FloatArray:
        raise NotImplementedError

    def canonical(self, labels: FloatArray) -> FloatArray:
        """The labels as this loss expects them; never writes into ``labels`` (the caller's array)."""
        return labels

    def canonical_one(self, label: float) -> float:
        return label


class LogLoss(Loss):
    """Cross-entropy of labels in {0, 1}: ``log(1 + e^z) - y z``; its derivative is ``sigmoid(z) - y``.

    >>> LogLoss().gradient(0.0, 1.0)
    -0.5
    """

    name = "log"
    kernel_code = 0

    def gradient(self, z: FloatArray | float, y: FloatArray | float) -> FloatArray | float:
        gradient: FloatArray | float = sigmoid(z) - y
        return gradient

    def gradient_one(self, z: float, y: float) -> float:
        """river's ``optim.losses.Log.gradient`` on one event: beyond a margin of 18 it is ``e^-m`` or
        exactly 1. ``sigmoid(z) - y`` differs from it by up to 1.5e-8 where the model is confidently
        wrong, enough on unscaled features to move weights past 1e-9 of river's.

        >>> LogLoss().gradient_one(30.0, 0.0), LogLoss().gradient_one(-30.0, 0.0) == math.exp(-30.0)
        (1.0, True)
        """
        sign = 1.0 if y == 1.0 else -1.0
        margin = sign * z
        if margin > 18.0:
            return -sign * math.exp(-margin)
        if margin < -18.0:
            return -sign
        return -sign / (math.exp(margin) + 1.0)

    def value(self, z: FloatArray, y: FloatArray) -> FloatArray:
        return log_loss_from_scores(z, y)


class PerceptronLoss(Loss):
    """Rosenblatt's criterion ``max(0, -y z)`` for labels in {-1, +1} (river's ``Hinge(threshold=0)``):
    derivative ``-y`` on a mistake (``y z <= 0``, so a zero model learns from its first event), else 0.

    >>> PerceptronLoss().gradient(0.0, 1.0), PerceptronLoss().gradient(2.0, 1.0)
    (-1.0, 0.0)
    """

    name = "perceptron"
    kernel_code = 1

    def gradient(self, z: FloatArray | float, y: FloatArray | float) -> FloatArray | float:
        if isinstance(z, float) and isinstance(y, float):
            return -y if y * z <= 0.0 else 0.0
        return np.where(np.multiply(y, z) <= 0.0, np.negative(y), 0.0)

    def value(self, z: FloatArray, y: FloatArray) -> FloatArray:
        return np.maximum(0.0, -y * z)

    def canonical(self, labels: FloatArray) -> FloatArray:
        return np.where(labels == 0.0, -1.0, labels)

    def canonical_one(self, label: float) -> float:
        return -1.0 if label == 0.0 else label
