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
    ],
)
def test_compiled_equals_numpy(
    make: type[LinearNeuron], kwargs: dict, minibatch: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled, reference, out_c, out_r, calls = run_both(make, kwargs, minibatch, monkeypatch)
    if not minibatch:
        assert calls == {"score_then_learn": BATCHES[False]}  # the scaler's statistics inside
    elif kwargs.get("standardize"):
        # A standardised mini-batch steps in numpy; only the scaler's statistics take the kernel.
        assert calls == {"welford": BATCHES[True]}
    else:
        assert calls == {"score_then_step": BATCHES[True]}
    np.testing.assert_allclose(out_c, out_r, rtol=0, atol=1e-12)
    np.testing.assert_allclose(compiled.weights, reference.weights, rtol=0, atol=1e-12)
    assert compiled.bias == pytest.approx(reference.bias, abs=1e-12)
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
