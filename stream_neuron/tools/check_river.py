"""``stream-neuron check-river``: replay a dataset through our neuron and river side by side.

Users run it after an upgrade (of stream-neuron, numpy or river): it prints the largest weight
difference and both progressive accuracies, and fails when they disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from stream_neuron.errors import OperatorError
from stream_neuron.neuron import MODEL_KINDS

WEIGHT_TOLERANCE = 1e-9
# The rates of river's documented examples, where they differ from the model's own default.
DEFAULT_RATES = {"logistic": 0.01}


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


def river_counterpart(kind: str, rate: float) -> Any:
    """river's model of the same kind, with the same rates (river's Perceptron steps by 1 unless told)."""
    from river import linear_model, optim

    if kind == "perceptron":
        reference = linear_model.Perceptron()
        reference.optimizer = optim.SGD(rate)
        reference.intercept_lr = optim.schedulers.Constant(rate)
        return reference
    if kind == "logistic":
        return linear_model.LogisticRegression(optimizer=optim.SGD(rate), intercept_lr=rate)
    raise OperatorError(f"check-river has no river counterpart for the {kind} model")


def compare(dataset: str, kind: str, learning_rate: float | None, standardize: bool) -> Comparison:
    """Replay ``dataset`` through this package's ``kind`` of model and river's, prequentially."""
    from river import compose, datasets, preprocessing

    stream = list({"phishing": datasets.Phishing, "bananas": datasets.Bananas}[dataset]())  # type: ignore[no-untyped-call]
    names = list(stream[0][0])
    X = np.array([[x[k] for k in names] for x, _ in stream], dtype=np.float64)
    y = np.array([float(bool(label)) for _, label in stream])
    model_class = MODEL_KINDS[kind]
    rate = (
        DEFAULT_RATES.get(kind, model_class.default_learning_rate) if learning_rate is None else learning_rate
    )
    ours = model_class(len(names), rate, standardize=standardize)
    reference = river_counterpart(kind, rate)
    pipeline = compose.Pipeline(preprocessing.StandardScaler(), reference) if standardize else reference

    outputs = ours.score_then_learn(X, y)
    ours_correct = ours.predicted_labels(outputs) == ours.loss.canonical(y)
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
