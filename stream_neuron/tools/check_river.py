"""``stream-neuron check-river``: replay a dataset through the component and river side by side.

Users run it after an upgrade (of stream-neuron, numpy or river): for each learning rate (several race
as candidates), with the optimizer and penalty given, it prints the largest weight difference and both
progressive accuracies, and fails when they disagree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stream_neuron.config import Settings
from stream_neuron.errors import OperatorError
from stream_neuron.feature_encoding import OpenVocabulary
from stream_neuron.feature_hashing import FeatureHashing
from stream_neuron.feature_options import FeatureOptions
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


def _numbers(x: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in x.items() if type(v) in (int, float)}


def _categories(x: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in x.items() if type(v) in (str, bool)}


def river_pipeline(reference: Any, standardize: bool, features: FeatureOptions, rule: Rule) -> Any:
    """river's preprocessing for ``--features``, in front of ``reference``: fixed, ``StandardScaler``
    (or nothing); open, the numbers (scaled or not) beside ``OneHotEncoder`` of the categories (a
    boolean is a category, as the component counts it; zero-valued one-hot entries only where they
    move nothing, under plain SGD); hashed, ``FeatureHasher`` (then ``StandardScaler``)."""
    from river import compose, preprocessing

    steps: list[Any] = []
    if features.features == "open":
        numbers: Any = compose.FuncTransformer(_numbers)
        if standardize:
            numbers = compose.Pipeline(numbers, preprocessing.StandardScaler())
        one_hot = preprocessing.OneHotEncoder(drop_zeros=not rule.plain)
        steps.append(
            compose.TransformerUnion(numbers, compose.Pipeline(compose.FuncTransformer(_categories), one_hot))
        )
    elif features.features == "hashed":
        steps.append(preprocessing.FeatureHasher(n_features=2**features.hash_bits, seed=features.hash_seed))
    if standardize and features.features != "open":
        steps.append(preprocessing.StandardScaler())
    return compose.Pipeline(*steps, reference) if steps else reference


def events_of(dataset: str, file: Path | None) -> list[tuple[dict[str, Any], Any]]:
    """The events to replay: river's dataset, or a JSON-lines file of ``{"features", "label"}``."""
    if file is None:
        from river import datasets

        loader = {"phishing": datasets.Phishing, "bananas": datasets.Bananas}[dataset]
        return list(loader())  # type: ignore[no-untyped-call]
    stream = []
    try:
        for number, line in enumerate(file.read_text().splitlines(), 1):
            if not line.strip():
                continue
            event = json.loads(line)
            if (
                not isinstance(event, dict)
                or not isinstance(event.get("features"), dict)
                or "label" not in event
            ):
                raise OperatorError(
                    f'{file}, line {number}: not an event with "features" (an object) and "label"'
                )
            stream.append((event["features"], event["label"]))
    except (OSError, ValueError) as error:
        raise OperatorError(f"cannot read {file}: {error}") from None
    if not stream:
        raise OperatorError(f"{file} holds no event")
    return stream


def compare(
    dataset: str,
    kind: str,
    learning_rate: float | tuple[float, ...] | None,
    standardize: bool,
    delay: int | None = None,
    rule: Rule | None = None,
    file: Path | None = None,
    features: FeatureOptions | None = None,
) -> list[Comparison]:
    """Replay ``dataset`` (or a JSON-lines ``file``) through the component's own processor (decode,
    feature encoding, candidates, delayed labels) and through river, prequentially; one comparison
    per learning rate (several rates race as candidates, each compared with river's model at its
    rate). With ``delay``, each label is revealed ``delay`` events after its question (river's
    ``evaluate.progressive_val_score(..., delay=delay)``): a question is scored, its answer learned."""
    from river import evaluate, metrics

    stream = events_of(dataset, file)
    features = features or FeatureOptions()
    names = list(stream[0][0])
    rule = rule or Rule()
    model_class = MODEL_KINDS[kind]
    if learning_rate is None:
        learning_rate = DEFAULT_RATES.get(kind, model_class.default_learning_rate)
    rates = learning_rate if isinstance(learning_rate, tuple) else (learning_rate,)
    fixed = features.features == "fixed"
    settings = Settings(
        model=kind, learning_rate=rates, standardize=standardize, optimizer=rule.optimizer, l2=rule.l2,
        l1=rule.l1, feature_names=tuple(names) if fixed else None,
        label_window=0 if delay is None else len(stream) + 1, metrics_every=10**9,
        **features.model_dump(),
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
        pipeline = river_pipeline(reference, standardize, features, rule)
        river_metric = metrics.Accuracy()  # type: ignore[no-untyped-call]
        replayed: Any = iter(stream)
        river_accuracy = evaluate.progressive_val_score(replayed, pipeline, river_metric, delay=delay)
        comparisons.append(
            Comparison(
                events=len(stream),
                max_weight_difference=_weight_difference(ours.weights, reference.weights, processor, names),
                bias_difference=abs(ours.bias - reference.intercept),
                our_accuracy=float(accuracy),
                river_accuracy=float(river_accuracy.get()),
                learning_rate=rate,
            )
        )
    return comparisons


def _weight_difference(
    ours: np.ndarray, theirs: dict[Any, float], processor: Processor, names: list[str]
) -> float:
    """The largest difference of a weight, by name (fixed, open) or by bucket (hashed); a weight river
    has and the component does not counts whole."""
    encoder = processor.encoder
    if isinstance(encoder, FeatureHashing):
        buckets = set(theirs) | set(np.flatnonzero(ours).tolist())
        return max((abs(float(ours[k]) - theirs.get(k, 0.0)) for k in buckets), default=0.0)
    keys = list(encoder.names) if isinstance(encoder, OpenVocabulary) else names
    position = {key: i for i, key in enumerate(keys)}
    return max(
        (
            abs((float(ours[position[k]]) if k in position else 0.0) - theirs.get(k, 0.0))
            for k in {*keys, *theirs}
        ),
        default=0.0,
    )
