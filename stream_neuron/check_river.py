"""``stream-neuron check-river``: replay a dataset through our neuron and river side by side.

Users run it after an upgrade (of stream-neuron, numpy or river): it prints the largest weight
difference and both progressive accuracies, and fails when they disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from stream_neuron.neuron import LinearNeuron, LogisticNeuron, Perceptron

WEIGHT_TOLERANCE = 1e-9


@dataclass
class Comparison:
    events: int
    max_weight_difference: float
    bias_difference: float
    our_accuracy: float
    river_accuracy: float

    @property
    def agree(self) -> bool:
        return (
            self.max_weight_difference <= WEIGHT_TOLERANCE
            and self.bias_difference <= WEIGHT_TOLERANCE
            and self.our_accuracy == self.river_accuracy
        )


def compare(dataset: str, model: str, learning_rate: float | None, standardize: bool) -> Comparison:
    from river import compose, datasets, linear_model, optim, preprocessing

    stream = list({"phishing": datasets.Phishing, "bananas": datasets.Bananas}[dataset]())  # type: ignore[no-untyped-call]
    names = list(stream[0][0])
    X = np.array([[x[k] for k in names] for x, _ in stream], dtype=np.float64)
    y = np.array([float(bool(label)) for _, label in stream])
    ours: LinearNeuron
    reference: Any
    if model == "perceptron":
        rate = 1.0 if learning_rate is None else learning_rate
        ours = Perceptron(len(names), rate, standardize=standardize)
        reference = linear_model.Perceptron()
        reference.optimizer = optim.SGD(rate)
        reference.intercept_lr = optim.schedulers.Constant(rate)
    else:
        rate = 0.01 if learning_rate is None else learning_rate
        ours = LogisticNeuron(len(names), rate, standardize=standardize)
        reference = linear_model.LogisticRegression(optimizer=optim.SGD(rate), intercept_lr=rate)
    pipeline = compose.Pipeline(preprocessing.StandardScaler(), reference) if standardize else reference

    outputs = ours.score_then_learn(X, y)
    ours_correct = (outputs > 0.5) == (y == 1.0) if model == "logistic" else (outputs > 0) == (y == 1.0)
    river_correct = 0
    for x, label in stream:
        river_correct += pipeline.predict_one(x) == bool(label)
        pipeline.learn_one(x, bool(label))
    river_weights = np.array([reference.weights.get(k, 0.0) for k in names])
    return Comparison(
        events=len(stream),
        max_weight_difference=float(np.max(np.abs(ours.weights - river_weights))),
        bias_difference=abs(ours.bias - reference.intercept),
        our_accuracy=float(np.mean(ours_correct)),
        river_accuracy=river_correct / len(stream),
    )
