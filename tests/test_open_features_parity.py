"""Open and hashed features against river's dict models, exactly: features that appear late, absent
ones, numbers and categories; per event and per mini-batch; every rule; the perceptron too."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from river import compose, linear_model, preprocessing

from stream_neuron import LogisticNeuron, Perceptron
from stream_neuron.decode import BadEventError
from stream_neuron.feature_encoding import OpenVocabulary, encode_features, sparse_rows
from stream_neuron.feature_hashing import FeatureHashing
from stream_neuron.neuron import LinearNeuron
from stream_neuron.neuron.sparse_rows import SparseRows
from tests.datasets import phishing
from tests.test_optimizer_parity import IDS, RULES, river_optimizer

pytestmark = pytest.mark.usefixtures("kernel")
TOL = 1e-9


def open_stream(n: int, seed: int) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Events whose features appear one after another (feature k from event 40 k on), each present
    with probability 0.7; numbers on several scales, categories with booleans among them."""
    rng = np.random.default_rng(seed)
    numeric = [f"n{k}" for k in range(6)]
    categorical = {"country": ["fr", "de", "us", "jp"], "device": ["ios", "android"], "vip": [True, False]}
    truth = rng.normal(size=len(numeric))
    events, labels = [], []
    for i in range(n):
        x: dict[str, Any] = {}
        for k, name in enumerate(numeric):
            if i >= 40 * k and rng.random() < 0.7:
                x[name] = float(rng.normal(loc=k / 4, scale=1 + k / 4)) if k % 2 else int(rng.integers(-2, 4))
        for k, (name, values) in enumerate(categorical.items()):
            if i >= 60 * k and rng.random() < 0.7:
                x[name] = values[int(rng.integers(len(values)))]
        score = sum(truth[k] * (x.get(name, 0) - k) / (1 + k) for k, name in enumerate(numeric))
        score += 1.5 * (x.get("country") == "fr") - (x.get("vip") is True)
        events.append(x)
        labels.append(float(score + rng.normal(scale=0.5) > 0))
    return events, np.array(labels)


def unruly_stream(n: int, seed: int) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Numbers on a scale of 10 with categories before, between and after them, a count from event
    n/3 on, and 5% of the labels flipped: at a rate of 0.05 the model is confidently wrong about
    dozens of events (margins below -18), and the descent amplifies every rounding difference."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=4)
    events, labels = [], []
    for i in range(n):
        x: dict[str, Any] = {}
        if rng.random() < 0.6:
            x["city"] = ["paris", "tokyo", "lima"][int(rng.integers(3))]
        for k in range(4):
            if rng.random() < 0.8:
                x[f"n{k}"] = round(float(rng.normal(scale=10.0)), 3)
            if k == 1 and rng.random() < 0.4:
                x["vip"] = bool(rng.random() < 0.5)
        if i >= n // 3 and rng.random() < 0.5:
            x["late"] = int(rng.integers(0, 30))
        score = sum(truth[k] * x.get(f"n{k}", 0.0) for k in range(4)) + 3.0 * (x.get("city") == "paris")
        events.append(x)
        labels.append(float((score > 0) ^ (rng.random() < 0.05)))
    return events, np.array(labels)


def phishing_with_gaps(seed: int) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Phishing sent as objects, with a quarter of the fields dropped at random."""
    rng = np.random.default_rng(seed)
    _, rows, _, y = phishing()
    return [{k: v for k, v in x.items() if rng.random() >= 0.25} for x in rows], y


def _numbers(x: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in x.items() if type(v) in (int, float)}


def _categories(x: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in x.items() if type(v) in (str, bool)}


def river_open(final: Any, standardize: bool, drop_zeros: bool) -> compose.Pipeline:
    """Numbers (scaled or not) beside one-hot categories, as the contract counts them (a boolean is
    a category here, where river's SelectType(numbers.Number) would take it for a number)."""
    numbers = compose.FuncTransformer(_numbers)
    if standardize:
        numbers = compose.Pipeline(numbers, preprocessing.StandardScaler())
    categories = compose.Pipeline(
        compose.FuncTransformer(_categories), preprocessing.OneHotEncoder(drop_zeros=drop_zeros)
    )
    return compose.Pipeline(compose.TransformerUnion(numbers, categories), final)


def river_model(kind: str, rule: dict[str, Any], lr: float) -> Any:
    if kind == "perceptron":
        return linear_model.Perceptron(l2=rule.get("l2", 0.0))
    return linear_model.LogisticRegression(
        river_optimizer(rule.get("optimizer", "sgd"), lr),
        l2=rule.get("l2", 0.0),
        l1=rule.get("l1", 0.0),
        intercept_lr=lr,
    )


def ours_model(
    kind: str, rule: dict[str, Any], lr: float, n_features: int, standardize: bool
) -> LinearNeuron:
    if kind == "perceptron":
        return Perceptron(n_features, l2=rule.get("l2", 0.0), standardize=standardize, sparse=True)
    return LogisticNeuron(n_features, lr, standardize=standardize, sparse=True, **rule)


def run_ours(
    model: LinearNeuron, encoder: Any, events: list[dict[str, Any]], y: np.ndarray, chunk: int, batch: bool
) -> np.ndarray:
    outputs = []
    for start in range(0, len(events), chunk):
        part = events[start : start + chunk]
        rows = sparse_rows((encoder.encode(x) for x in part), len(part))
        if isinstance(encoder, OpenVocabulary):
            model.grow(len(encoder))
        step = model.score_then_learn_batch if batch else model.score_then_learn
        outputs.append(step(rows, y[start : start + chunk]))
    return np.concatenate(outputs)


def river_final(pipeline: Any) -> Any:
    return pipeline.steps[list(pipeline.steps)[-1]] if isinstance(pipeline, compose.Pipeline) else pipeline


def assert_same_weights(model: LinearNeuron, keys: list[Any], final: Any) -> None:
    np.testing.assert_allclose(model.weights, [final.weights.get(k, 0.0) for k in keys], rtol=0, atol=TOL)
    assert model.bias == pytest.approx(final.intercept, abs=TOL)


CASES = [("sgd", {}), *zip(IDS, RULES, strict=True)]


@pytest.mark.parametrize(("rule_id", "rule"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("standardize", [False, True], ids=["raw", "standardized"])
@pytest.mark.parametrize("chunk", [1, 7])
def test_open_features_per_event_equal_river(
    rule_id: str, rule: dict[str, Any], standardize: bool, chunk: int
) -> None:
    lr = 0.05
    for events, y in (open_stream(600, seed=3), phishing_with_gaps(seed=4)):
        vocabulary = OpenVocabulary()
        ours = ours_model("logistic", rule, lr, 0, standardize)
        outputs = run_ours(ours, vocabulary, events, y, chunk, batch=False)
        # Zero-valued one-hot entries (river's default) move no weight under plain SGD; under
        # an optimizer or a penalty they would, and the contract steps present features only.
        river = river_open(river_model("logistic", rule, lr), standardize, drop_zeros=bool(rule))
        correct = 0
        for x, label, p in zip(events, y, outputs, strict=True):
            assert p == pytest.approx(river.predict_proba_one(x).get(True, 0.0), abs=TOL)
            correct += river.predict_one(x) == bool(label)
            river.learn_one(x, bool(label))
        assert correct == int(np.count_nonzero(ours.predicted_labels(outputs) == y))
        assert_same_weights(ours, vocabulary.names, river_final(river))


@pytest.mark.parametrize("standardize", [False, True], ids=["raw", "standardized"])
def test_open_features_perceptron_equals_river(standardize: bool) -> None:
    events, y = open_stream(600, seed=5)
    vocabulary = OpenVocabulary()
    ours = ours_model("perceptron", {}, 1.0, 0, standardize)
    outputs = run_ours(ours, vocabulary, events, y, 5, batch=False)
    river = river_open(river_model("perceptron", {}, 1.0), standardize, drop_zeros=False)
    for x, label, out in zip(events, y, outputs, strict=True):
        assert (out == 1) == river.predict_one(x)
        river.learn_one(x, bool(label))
    assert_same_weights(ours, vocabulary.names, river_final(river))


@pytest.mark.parametrize(("rule_id", "rule"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("batch", [1, 16])
def test_open_features_mini_batches_equal_river_learn_many(
    rule_id: str, rule: dict[str, Any], batch: int
) -> None:
    """river's learn_many takes the batch's columns (absent = 0 in a present column's rows): the
    features present in any row of the batch are stepped, the others not."""
    lr = 0.1
    events, y = open_stream(400, seed=6)
    vocabulary = OpenVocabulary()
    ours = ours_model("logistic", rule, lr, 0, standardize=False)
    run_ours(ours, vocabulary, events, y, batch, batch=True)
    river = river_model("logistic", rule, lr)
    encoder = OpenVocabulary()
    for start in range(0, len(events), batch):
        part = events[start : start + batch]
        encoded = [dict(zip(*encoder.encode(x)[:2], strict=True)) for x in part]
        frame = pd.DataFrame(encoded).fillna(0.0).rename(columns=lambda i: encoder.names[i])
        river.learn_many(frame, pd.Series(y[start : start + batch].astype(bool)))
    assert_same_weights(ours, vocabulary.names, river)


@pytest.mark.parametrize("batch", [1, 16])
def test_open_features_perceptron_mini_batches_equal_river_learn_many(batch: int) -> None:
    events, y = open_stream(400, seed=7)
    vocabulary = OpenVocabulary()
    ours = ours_model("perceptron", {}, 1.0, 0, standardize=False)
    run_ours(ours, vocabulary, events, y, batch, batch=True)
    river = river_model("perceptron", {}, 1.0)
    encoder = OpenVocabulary()
    for start in range(0, len(events), batch):
        encoded = [dict(zip(*encoder.encode(x)[:2], strict=True)) for x in events[start : start + batch]]
        frame = pd.DataFrame(encoded).fillna(0.0).rename(columns=lambda i: encoder.names[i])
        river.learn_many(frame, pd.Series(y[start : start + batch].astype(bool)))
    assert_same_weights(ours, vocabulary.names, river)


@pytest.mark.parametrize(("rule_id", "rule"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize(("bits", "seed"), [(20, 0), (4, 7)])
def test_hashed_features_equal_river_feature_hasher(
    rule_id: str, rule: dict[str, Any], bits: int, seed: int
) -> None:
    """2^20 buckets (no collisions here) and 16 (collisions summed, signs alternating)."""
    lr = 0.05
    events, y = open_stream(500, seed=8)
    hashing = FeatureHashing(bits, seed)
    ours = ours_model("logistic", rule, lr, hashing.n_features, standardize=False)
    outputs = run_ours(ours, hashing, events, y, 9, batch=False)
    river = compose.Pipeline(
        preprocessing.FeatureHasher(n_features=2**bits, seed=seed), river_model("logistic", rule, lr)
    )
    for x, label, p in zip(events, y, outputs, strict=True):
        assert p == pytest.approx(river.predict_proba_one(x).get(True, 0.0), abs=TOL)
        river.learn_one(x, bool(label))
    final = river_final(river)
    touched = sorted(final.weights)
    np.testing.assert_allclose(ours.weights[touched], [final.weights[k] for k in touched], rtol=0, atol=TOL)
    assert np.count_nonzero(np.delete(ours.weights, touched)) == 0
    assert ours.bias == pytest.approx(final.intercept, abs=TOL)


@pytest.mark.parametrize("features", ["open", "hashed"])
def test_confident_mistakes_under_a_large_rate_equal_river_bit_for_bit(features: str) -> None:
    """river's per-event log-loss gradient (exactly 1 where the model is confidently wrong) and its
    order of summing (an open row's one-hot values before its numbers) keep every weight river's to
    the bit, where the descent amplifies any difference (0.1 to 3 apart without them)."""
    lr = 0.05
    events, y = unruly_stream(3000, seed=5)
    encoder = OpenVocabulary() if features == "open" else FeatureHashing(20)
    ours = ours_model("logistic", {}, lr, 0 if features == "open" else 2**20, standardize=False)
    run_ours(ours, encoder, events, y, 7, batch=False)
    final = river_model("logistic", {}, lr)
    if features == "open":
        river = river_open(final, standardize=False, drop_zeros=True)
    else:
        river = compose.Pipeline(preprocessing.FeatureHasher(n_features=2**20, seed=0), final)
    wrong = 0
    for x, label in zip(events, y, strict=True):
        p = river.predict_proba_one(x).get(True, 0.0)
        wrong += p > 1 - 1.5e-8 if label == 0 else p < 1.5e-8
        river.learn_one(x, bool(label))
    assert wrong >= 20, "the stream makes the model confidently wrong"
    if isinstance(encoder, OpenVocabulary):
        keys, weights = encoder.names, ours.weights
    else:
        keys = sorted(final.weights)
        weights = ours.weights[keys]
        assert np.count_nonzero(np.delete(ours.weights, keys)) == 0
    assert set(final.weights) <= set(keys)
    np.testing.assert_array_equal(weights, [final.weights.get(k, 0.0) for k in keys])
    assert ours.bias == final.intercept


def test_hashed_standardized_equals_river_hasher_then_scaler() -> None:
    events, y = open_stream(400, seed=9)
    hashing = FeatureHashing(6, 1)
    ours = ours_model("logistic", {}, 0.05, hashing.n_features, standardize=True)
    outputs = run_ours(ours, hashing, events, y, 4, batch=False)
    river = compose.Pipeline(
        preprocessing.FeatureHasher(n_features=64, seed=1),
        preprocessing.StandardScaler(),
        river_model("logistic", {}, 0.05),
    )
    for x, label, p in zip(events, y, outputs, strict=True):
        assert p == pytest.approx(river.predict_proba_one(x).get(True, 0.0), abs=TOL)
        river.learn_one(x, bool(label))
    assert_same_weights(ours, list(range(64)), river_final(river))


def test_every_feature_present_equals_the_dense_model_bit_for_bit() -> None:
    _, _, X, y = phishing()
    for standardize in (False, True):
        dense = LogisticNeuron(9, 0.1, standardize=standardize)
        sparse = LogisticNeuron(9, 0.1, standardize=standardize, sparse=True)
        for start in range(0, len(y), 50):
            a = dense.score_then_learn(X[start : start + 50], y[start : start + 50])
            b = sparse.score_then_learn(SparseRows.from_dense(X[start : start + 50]), y[start : start + 50])
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
        np.testing.assert_allclose(dense.weights, sparse.weights, rtol=0, atol=1e-12)


def test_a_sparse_model_survives_a_round_trip_and_grows() -> None:
    events, y = open_stream(300, seed=10)
    vocabulary = OpenVocabulary()
    model = ours_model("logistic", {"optimizer": "adam"}, 0.05, 0, standardize=True)
    run_ours(model, vocabulary, events[:150], y[:150], 10, batch=False)
    twin = LogisticNeuron.from_dict(model.to_dict())
    rest_a = run_ours(model, vocabulary, events[150:], y[150:], 10, batch=False)
    copy = OpenVocabulary(list(vocabulary.names[: twin.n_features]))
    rest_b = run_ours(twin, copy, events[150:], y[150:], 10, batch=False)
    np.testing.assert_array_equal(rest_a, rest_b)
    np.testing.assert_array_equal(model.weights, twin.weights)


@pytest.mark.parametrize(
    ("features", "reason"),
    [
        ({"a": {"b": 1}}, 'feature "a" must be a number, a string or a boolean, got an object'),
        ({"a": [1]}, 'feature "a" must be a number, a string or a boolean, got an array'),
        ({"a": None}, 'feature "a" must be a number, a string or a boolean, got null'),
        ({"a": 10**400}, 'feature "a" must be a finite number that fits a float64'),
        ({"x" * 300: 1}, "is 300 bytes, over the limit of 256 (--max-feature-name-bytes)"),
        ({"a": "v" * 300}, "is 300 bytes, over the limit of 256 (--max-feature-name-bytes)"),
        ({"a_b": 1, "a": "b"}, 'the event gives feature "a_b" twice'),
    ],
)
def test_bad_features_are_named(features: dict[str, Any], reason: str) -> None:
    for encoder in (OpenVocabulary(), FeatureHashing(8)):
        if isinstance(encoder, FeatureHashing) and "twice" in reason:
            continue  # hashing sums what lands in one bucket, as river's FeatureHasher does
        with pytest.raises(BadEventError) as refused:
            encode_features(encoder, {"features": features})
        assert reason in refused.value.reason
        assert len(encoder.names if isinstance(encoder, OpenVocabulary) else []) == 0


@pytest.mark.parametrize(
    ("value", "got"), [({"b": 1}, 'an object {"b": 1}'), ([1], "an array [1]"), (None, "null")]
)
def test_a_value_of_the_wrong_kind_is_named_once(value: Any, got: str) -> None:
    for encoder in (OpenVocabulary(), FeatureHashing(8)):
        with pytest.raises(BadEventError) as refused:
            encode_features(encoder, {"features": {"a": value}})
        assert refused.value.reason == f'feature "a" must be a number, a string or a boolean, got {got}'


def test_the_vocabulary_limit_refuses_the_whole_event_and_adds_nothing() -> None:
    vocabulary = OpenVocabulary(max_features=3)
    vocabulary.encode({"a": 1, "b": 2})
    with pytest.raises(
        BadEventError, match=r"adds 2 new feature\(s\) \(\"c\" first\) to the 2 known, over the limit of 3"
    ):
        vocabulary.encode({"a": 1, "c": 1, "d": "x"})
    assert vocabulary.names == ["a", "b"]
    assert vocabulary.encode({"c": 5}) == ([2], [5.0], [True])


@pytest.mark.parametrize("kind", ["logistic", "perceptron"])
@pytest.mark.parametrize("standardize", [False, True], ids=["raw", "standardized"])
def test_the_sparse_kernel_equals_the_numpy_reference(
    kind: str, standardize: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """To 1e-12, with rows the guard refuses (values that would make the step or the logit leave
    the floats), unlabelled rows and empty rows among them."""
    from stream_neuron.neuron import _kernels, accel  # type: ignore[attr-defined]

    events, y = open_stream(400, seed=33)
    rng = np.random.default_rng(3)
    for i in rng.choice(400, size=40, replace=False):
        # A feature of their own: how other rows' logits near the float limit round is not the point.
        events[i] = {"huge": float(1e308 * (-1) ** i), "country": "fr"} if i % 4 else {}
    y[rng.choice(400, size=40, replace=False)] = np.nan
    results = []
    for compiled in (_kernels, None):
        monkeypatch.setattr(accel, "compiled", compiled)
        vocabulary = OpenVocabulary()
        model = ours_model(kind, {}, 1.0 if kind == "perceptron" else 0.5, 0, standardize)
        outputs, refusals = [], []
        for start in range(0, 400, 23):
            part = events[start : start + 23]
            rows = sparse_rows((vocabulary.encode(x) for x in part), len(part))
            model.grow(len(vocabulary))
            refused = np.empty(len(part), dtype=np.int8)
            outputs.append(model.score_then_learn(rows, y[start : start + 23], None, refused))
            refusals.append(refused)
        results.append((np.concatenate(outputs), np.concatenate(refusals), model))
    (out_c, ref_c, model_c), (out_n, ref_n, model_n) = results
    np.testing.assert_array_equal(ref_c, ref_n)
    assert (ref_c != 0).any(), "the guard refused some rows"
    np.testing.assert_allclose(out_c, out_n, rtol=0, atol=1e-12)
    # relative as well: a step taken from a 1e308 value leaves a weight near 1e307
    np.testing.assert_allclose(model_c.weights, model_n.weights, rtol=1e-12, atol=1e-12)
    assert model_c.bias == pytest.approx(model_n.bias, abs=1e-12) and model_c.n_updates == model_n.n_updates
    if standardize:
        assert model_c.sparse_scaler is not None and model_n.sparse_scaler is not None
        np.testing.assert_array_equal(model_c.sparse_scaler.counts, model_n.sparse_scaler.counts)
        np.testing.assert_allclose(model_c.sparse_scaler.var, model_n.sparse_scaler.var, rtol=1e-12, atol=0)
