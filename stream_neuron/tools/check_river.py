"""``stream-neuron check-river``: replay a dataset through the component and river side by side.

Users run it after an upgrade (of stream-neuron, numpy or river): for each learning rate (several race
as candidates), with the optimizer and penalty given, it prints the largest weight difference and both
progressive accuracies, and fails when they disagree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from stream_neuron.config import Settings
from stream_neuron.errors import OperatorError
from stream_neuron.neuron import MODEL_KINDS
from stream_neuron.neuron.optimizers import Rule
from stream_neuron.processor import Processor
from stream_neuron.records import InputRecord

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
    learning_rate: float = 0.0

    @property
    def agree(self) -> bool:
        return (
            self.max_weight_difference <= WEIGHT_TOLERANCE
            and self.bias_difference <= WEIGHT_TOLERANCE
            and self.our_accuracy == self.river_accuracy
        )


def river_counterpart(kind: str, rate: float, rule: Rule | None = None) -> Any:
    """river's model of the same kind, optimizer and penalty, with the same rates (river's Perceptron
    steps by 1 unless told; river steps the intercept by plain SGD whatever the optimizer)."""
    from river import linear_model, optim

    rule = rule or Rule()
    if kind == "perceptron":
        reference = linear_model.Perceptron(l2=rule.l2)
        reference.optimizer = optim.SGD(rate)
        reference.intercept_lr = optim.schedulers.Constant(rate)
        return reference
    if kind == "logistic":
        optimizer = {"sgd": optim.SGD, "adagrad": optim.AdaGrad, "adam": optim.Adam}[rule.optimizer](rate)
        return linear_model.LogisticRegression(optimizer=optimizer, l2=rule.l2, l1=rule.l1, intercept_lr=rate)
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


def _records(stream: list[tuple[dict[str, Any], Any]], delay: int | None) -> list[InputRecord]:
    """The dataset as the component's input: events with their label, or (``delay``) questions and
    answers in river's ``simulate_qa`` order."""
    values: list[dict[str, Any]] = []
    if delay is None:
        values = [{"id": f"e{i}", "features": x, "label": int(bool(y))} for i, (x, y) in enumerate(stream)]
    else:
        index, answers = qa_order(len(stream), delay)
        for i, answer in zip(index.tolist(), answers.tolist(), strict=True):
            x, y = stream[i]
            values.append(
                {"id": f"e{i}", "label": int(bool(y))} if answer else {"id": f"e{i}", "features": x}
            )
    return [
        InputRecord("check-river", 0, offset, None, json.dumps(value).encode(), [], offset)
        for offset, value in enumerate(values)
    ]


def compare(
    dataset: str,
    kind: str,
    learning_rate: float | tuple[float, ...] | None,
    standardize: bool,
    delay: int | None = None,
    rule: Rule | None = None,
) -> list[Comparison]:
    """Replay ``dataset`` through the component's own processor (decode, candidates, delayed labels)
    and through river, prequentially; one comparison per learning rate (several rates race as
    candidates, each compared with river's model at its rate). With ``delay``, each label is revealed
    ``delay`` events after its question (river's ``evaluate.progressive_val_score(..., delay=delay)``):
    a question is scored, its answer learned."""
    from river import compose, datasets, evaluate, metrics, preprocessing

    loader = {"phishing": datasets.Phishing, "bananas": datasets.Bananas}[dataset]
    stream = list(loader())  # type: ignore[no-untyped-call]
    names = list(stream[0][0])
    rule = rule or Rule()
    model_class = MODEL_KINDS[kind]
    if learning_rate is None:
        learning_rate = DEFAULT_RATES.get(kind, model_class.default_learning_rate)
    rates = learning_rate if isinstance(learning_rate, tuple) else (learning_rate,)
    settings = Settings(
        model=kind, learning_rate=rates, standardize=standardize, optimizer=rule.optimizer, l2=rule.l2,
        l1=rule.l1, feature_names=tuple(names), label_window=0 if delay is None else len(stream) + 1,
        metrics_every=10**9,
    )  # fmt: skip
    processor = Processor(settings, 0.0)
    out = processor.process(_records(stream, delay), 1.0)
    out.extend(processor.close(2.0))
    final = json.loads(out.metrics[-1].value or b"{}")
    models = processor.models
    assert models is not None
    accuracies = (
        [c["cumulative"]["accuracy"] for c in final["candidates"]]
        if models.racing
        else [final["cumulative"]["accuracy"]]
    )
    comparisons = []
    for rate, ours, accuracy in zip(rates, models.models, accuracies, strict=True):
        reference = river_counterpart(kind, rate, rule)
        pipeline = compose.Pipeline(preprocessing.StandardScaler(), reference) if standardize else reference
        river_metric = metrics.Accuracy()  # type: ignore[no-untyped-call]
        river_accuracy = evaluate.progressive_val_score(loader(), pipeline, river_metric, delay=delay)  # type: ignore[no-untyped-call]
        river_weights = np.array([reference.weights.get(k, 0.0) for k in names])
        comparisons.append(
            Comparison(
                events=len(stream),
                max_weight_difference=float(np.max(np.abs(ours.weights - river_weights))),
                bias_difference=abs(ours.bias - reference.intercept),
                our_accuracy=float(accuracy),
                river_accuracy=float(river_accuracy.get()),
                learning_rate=rate,
            )
        )
    return comparisons
