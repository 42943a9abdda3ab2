"""The compiled accelerator against the numpy reference, on the same batches; each compiled run counts
the kernel calls, so a test fails if the compiled run quietly took the numpy path."""

from __future__ import annotations

from collections import Counter
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from stream_neuron import LogisticNeuron, Perceptron
from stream_neuron.neuron import accel
from stream_neuron.neuron.linear import LinearNeuron
from tests.datasets import synthetic


class CountedKernels:
    """The compiled module, counting the calls of each kernel."""

    def __init__(self, module: ModuleType) -> None:
        self.module, self.calls = module, Counter[str]()

    def __getattr__(self, name: str) -> Any:
        kernel = getattr(self.module, name)

        def counted(*args: Any) -> Any:
            self.calls[name] += 1
            return kernel(*args)

        return counted


BATCHES = {False: -(-1003 // 500), True: -(-1003 // 32)}  # 500-row polls, or mini-batches of 32


def run_both(
    make: type[LinearNeuron], kwargs: dict, minibatch: bool, monkeypatch: pytest.MonkeyPatch
) -> tuple[LinearNeuron, LinearNeuron, np.ndarray, np.ndarray, Counter[str]]:
    if accel.compiled is None:
        pytest.fail("the compiled kernels are not built")
    X, y = synthetic(1003, 6, seed=11, unlabelled_fraction=0.25)
    models = []
    outputs = []
    counted = CountedKernels(accel.compiled)
    for kernels in (counted, None):
        monkeypatch.setattr(accel, "compiled", kernels)
        model = make(6, **kwargs)
        step = 32 if minibatch else 500
        out = []
        for start in range(0, len(y), step):
            method = model.score_then_learn_batch if minibatch else model.score_then_learn
            out.append(method(X[start : start + step], y[start : start + step]))
        models.append(model)
        outputs.append(np.concatenate(out))
    return models[0], models[1], outputs[0], outputs[1], counted.calls


@pytest.mark.parametrize("minibatch", [False, True])
@pytest.mark.parametrize(
    ("make", "kwargs"),
    [
        (LogisticNeuron, {"learning_rate": 0.1}),
        (LogisticNeuron, {"learning_rate": 0.8, "intercept_learning_rate": 0.1, "schedule": "invscaling"}),
        (LogisticNeuron, {"learning_rate": 0.1, "standardize": True}),
        (Perceptron, {"learning_rate": 0.5}),
        (LogisticNeuron, {"learning_rate": 0.1, "optimizer": "adagrad"}),
        (LogisticNeuron, {"learning_rate": 0.01, "optimizer": "adam", "standardize": True}),
        (LogisticNeuron, {"learning_rate": 0.5, "l2": 0.01, "schedule": "invscaling"}),
        (LogisticNeuron, {"learning_rate": 0.1, "l1": 0.001}),
        (LogisticNeuron, {"learning_rate": 0.05, "optimizer": "adam", "l1": 0.01, "standardize": True}),
        (Perceptron, {"learning_rate": 0.5, "l2": 0.1}),
    ],
)
def test_compiled_equals_numpy(
    make: type[LinearNeuron], kwargs: dict, minibatch: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled, reference, out_c, out_r, calls = run_both(make, kwargs, minibatch, monkeypatch)
    plain = not ({"optimizer", "l2", "l1"} & set(kwargs))
    if not minibatch:
        assert calls == {"score_then_learn": BATCHES[False]}  # the scaler's statistics, the rule inside
    elif kwargs.get("standardize") and plain:
        # A standardised mini-batch steps in numpy; only the scaler's statistics take the kernel.
        assert calls == {"welford": BATCHES[True]}
    elif plain:
        assert calls == {"score_then_step": BATCHES[True]}
    else:  # a mini-batch with an optimizer or a penalty steps in numpy (one step a batch)
        assert calls == ({"welford": BATCHES[True]} if kwargs.get("standardize") else {})
    np.testing.assert_allclose(out_c, out_r, rtol=0, atol=1e-12)
    np.testing.assert_allclose(compiled.weights, reference.weights, rtol=0, atol=1e-12)
    assert compiled.bias == pytest.approx(reference.bias, abs=1e-12)
    assert compiled.n_updates == reference.n_updates
    state_c, state_r = compiled.rule_state.to_dict(), reference.rule_state.to_dict()
    for key in ("first", "second", "cum_l1"):
        assert (state_c[key] is None) == (state_r[key] is None), key
        if state_c[key] is not None:
            np.testing.assert_allclose(state_c[key], state_r[key], rtol=0, atol=1e-12)
    assert state_c["max_cum_l1"] == pytest.approx(state_r["max_cum_l1"], abs=1e-12)


@pytest.mark.parametrize("rule", [{"l2": 0.5}, {"optimizer": "adagrad"}, {"optimizer": "adam"}, {"l1": 0.01}])
def test_a_rule_step_that_leaves_the_floats_is_refused_alike(
    rule: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows of 1e155 make the squared gradient (AdaGrad's, Adam's moments) or the step overflow: both
    paths refuse the same rows, and change nothing for them."""
    if accel.compiled is None:
        pytest.fail("the compiled kernels are not built")
    X, y = synthetic(200, 3, seed=5)
    X[::17] *= 1e155
    results = []
    for kernels in (accel.compiled, None):
        monkeypatch.setattr(accel, "compiled", kernels)
        model = LogisticNeuron(3, learning_rate=1e150, **rule)
        results.append((model.score_then_learn(X, y), model))
    (out_c, compiled), (out_r, reference) = results
    assert np.isnan(out_r).any()
    np.testing.assert_array_equal(np.isnan(out_c), np.isnan(out_r))
    np.testing.assert_allclose(out_c, out_r, rtol=0, atol=1e-12)
    np.testing.assert_allclose(compiled.weights, reference.weights, rtol=1e-12, atol=0)
    assert compiled.n_updates == reference.n_updates


def test_compiled_kernel_refuses_bad_batches_without_changing_anything() -> None:
    if accel.compiled is None:
        pytest.fail("the compiled kernels are not built")
    model = LogisticNeuron(2, learning_rate=0.1)
    model.learn_one([1.0, 1.0], 1)
    before = model.to_dict()
    for X, y in (([[1.0, np.nan]], [1.0]), ([[1.0, 2.0]], [3.0]), ([[1.0, 2.0]], [-1.0])):
        with pytest.raises(ValueError):
            model.score_then_learn(X, y)
        with pytest.raises(ValueError):
            model.score_then_learn_batch(X, y)
        assert model.to_dict() == before


def test_the_sparse_kernel_takes_indices_and_counts_of_int64_only() -> None:
    """Its row offsets, feature indices and the scaler's counts are int64 (float64 ones would be read
    as integers); anything else is refused by name."""
    kernels = accel.compiled
    if kernels is None:
        pytest.fail("the compiled kernels are not built")

    def step(indptr: Any, indices: Any, counts: Any) -> Any:
        weights = np.zeros(2)
        scaler = (counts, np.zeros(2), np.zeros(2)) if counts is not None else (None, None, None)
        result = kernels.sparse_score_then_learn(
            indptr, indices, np.array([1.0]), np.zeros(1, np.uint8), np.array([1.0]), weights, 0.0, 0,
            0.1, 0.1, 0.25, False, np.empty(1), np.empty(1), np.zeros(1, np.int8), 0, *scaler, np.nan,
        )  # fmt: skip
        return result, weights.tolist()

    good = np.array([0, 1]), np.array([0]), np.zeros(2, dtype=np.int64)
    assert step(*good)[1] == [0.05, 0.0]
    for name, at in (("indptr", 0), ("indices", 1), ("counts", 2)):
        for wrong in (good[at].astype(np.float64), good[at].astype(np.int32)):
            arguments = list(good)
            arguments[at] = wrong
            with pytest.raises(TypeError, match=f"^{name} must be a C-contiguous array of int64$"):
                step(*arguments)


@pytest.mark.parametrize(
    "weights",
    [
        np.random.default_rng(3).normal(size=2**20),  # a hashed model's: past OpenBLAS's threaded size
        np.random.default_rng(4).normal(size=7) * 1e-3,
        np.array([3e300, 4e300, 0.0]),  # overflows: the scaled path
        np.array([1e-200, 2e-200]),  # underflows: the scaled path
        np.zeros(5),
        np.zeros(0),
        np.array([1.0, np.inf]),
        np.array([np.nan, 1.0]),
    ],
)
def test_the_compiled_norm_equals_numpy_s(weights: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    """The metrics' weight norm, its sum of squares in the compiled loop, against numpy's dot."""
    if accel.compiled is None:
        pytest.fail("the compiled kernels are not built")
    counted = CountedKernels(accel.compiled)
    monkeypatch.setattr(accel, "compiled", counted)
    compiled = accel.weight_norm(weights)
    assert counted.calls["sum_of_squares"] == 1
    strided = accel.weight_norm(weights[::2])  # not contiguous (past one number): numpy's
    monkeypatch.setattr(accel, "compiled", None)
    reference = accel.weight_norm(weights)
    np.testing.assert_allclose(compiled, reference, rtol=1e-13, atol=0)
    np.testing.assert_equal(strided, accel.weight_norm(weights[::2]))  # NaN equal to NaN
