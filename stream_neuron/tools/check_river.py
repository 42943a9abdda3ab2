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


def qa_order(n: int, delay: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The order of river's ``stream.simulate_qa(moment=None, delay=delay)`` over ``n`` events: the event
    index of each step, and whether the step is the answer (``True``) or the question."""
    if delay is None:
        return np.repeat(np.arange(n), 2), np.tile([False, True], n)
    lag = max(delay, 1)  # an answer comes after its own question: a delay of 0 acts as 1 (river's order)
    steps: list[tuple[int, bool]] = []
    for i in range(n):
        if i >= lag:
            steps.append((i - lag, True))
        steps.append((i, False))
    steps += [(i, True) for i in range(max(n - lag, 0), n)]
    index, answers = zip(*steps, strict=True)
    return np.array(index), np.array(answers)


def compare(
    dataset: str, kind: str, learning_rate: float | None, standardize: bool, delay: int | None = None
) -> Comparison:
    """Replay ``dataset`` through this package's ``kind`` of model and river's, prequentially; with
    ``delay``, each label revealed ``delay`` events after its question (river's
    ``evaluate.progressive_val_score(..., delay=delay)``): a question is scored, its answer learned."""
    from river import compose, datasets, evaluate, metrics, preprocessing

    loader = {"phishing": datasets.Phishing, "bananas": datasets.Bananas}[dataset]
    stream = list(loader())  # type: ignore[no-untyped-call]
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

    # Questions are rows without a label (scored, not learned), answers the same rows with it.
    index, answers = qa_order(len(y), delay)
    outputs = ours.score_then_learn(X[index], np.where(answers, y[index], np.nan))
    asked = outputs[~answers][np.argsort(index[~answers], kind="stable")]
    ours_correct = ours.predicted_labels(asked) == ours.loss.canonical(y)
    river_metric = metrics.Accuracy()  # type: ignore[no-untyped-call]
    accuracy = evaluate.progressive_val_score(loader(), pipeline, river_metric, delay=delay)  # type: ignore[no-untyped-call]
    river_weights = np.array([reference.weights.get(k, 0.0) for k in names])
    return Comparison(
        events=len(stream),
        max_weight_difference=float(np.max(np.abs(ours.weights - river_weights))),
        bias_difference=abs(ours.bias - reference.intercept),
        our_accuracy=float(np.mean(ours_correct)),
        river_accuracy=float(accuracy.get()),
    )
