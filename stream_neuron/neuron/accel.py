"""Which implementation runs the hot paths: the optional compiled kernels, or the numpy reference.

The compiled module is built from ``_kernels.c`` at install time when a C compiler is present.
``STREAM_NEURON_KERNEL=numpy`` forces the reference path (the tests run both and compare them).
"""

from __future__ import annotations

import importlib
import math
import os
from types import ModuleType
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from stream_neuron.neuron.numeric import FloatArray, robust_norm
from stream_neuron.neuron.optimizers import OPTIMIZERS, Rule, RuleState
from stream_neuron.neuron.schedules import Schedule


class ScalerStatistics(Protocol):
    """What the per-event kernel reads and updates of an online scaler (``scaler.py``'s)."""

    count: int
    mean: FloatArray
    var: FloatArray


def load_compiled(module: str) -> ModuleType | None:
    """The compiled module ``module`` (``stream_neuron._encode``, say) when it was built and
    ``STREAM_NEURON_KERNEL`` is not ``numpy``; else ``None``, and the Python reference runs."""
    if os.environ.get("STREAM_NEURON_KERNEL", "auto") == "numpy":
        return None
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


compiled: ModuleType | None = load_compiled("stream_neuron.neuron._kernels")


def sum_of_squares(weights: FloatArray) -> float:
    """The weights' sum of squares in one pass (inf when it overflows): compiled when it can be."""
    with np.errstate(over="ignore", invalid="ignore"):
        if compiled is None or weights.dtype != np.float64 or not weights.flags.c_contiguous:
            return float(np.dot(weights, weights))
        return float(compiled.sum_of_squares(weights))


def weight_norm(weights: FloatArray) -> float:
    """:func:`~stream_neuron.neuron.numeric.robust_norm`, its sum of squares compiled when it can be:
    in this thread, where numpy's dot of a long array wakes OpenBLAS's threads (``_kernels.c``)."""
    return robust_norm(weights, sum_of_squares)


def name() -> str:
    """``"compiled"`` or ``"numpy"``: what the hot paths use now (reported by benchmarks and logs)."""
    return "numpy" if compiled is None else "compiled"


def _batch(X: FloatArray, y: ArrayLike, n_features: int) -> tuple[FloatArray, FloatArray] | None:
    labels = np.ascontiguousarray(y, dtype=np.float64).reshape(-1)
    if X.ndim != 2 or X.shape[1] != n_features or labels.shape[0] != X.shape[0]:
        return None
    return X, labels


def per_event(
    rows: FloatArray,
    y: ArrayLike,
    weights: FloatArray,
    bias: float,
    t: int,
    schedule: Schedule,
    intercept_schedule: Schedule,
    loss_code: int | None,
    scaler: ScalerStatistics | None,
    scores_out: FloatArray,
    refused_out: NDArray[np.int8],
    rule: Rule,
    rule_state: RuleState,
) -> tuple[FloatArray, float, int, RuleState] | None:
    """The per-event kernel over ``rows`` (C-contiguous): outputs, the new bias, the rows learned, the
    rule's new state. ``weights`` and the scaler change in place. ``None``: no kernel for this batch
    or loss, or a bad batch, which the numpy reference then names (the kernel changed nothing)."""
    batch = _batch(rows, y, weights.shape[0])
    if compiled is None or loss_code is None or batch is None:
        return None
    outputs = np.empty(rows.shape[0])
    state = rule_state if rule.plain else _kernel_state(rule, rule_state.copy(), weights.shape[0])
    new_bias, learned, count, max_cum = compiled.score_then_learn(
        rows, batch[1], weights, bias, t, schedule.learning_rate, intercept_schedule.learning_rate,
        schedule.power, schedule.name == "invscaling", scores_out, outputs, refused_out, loss_code,
        None if scaler is None else scaler.mean, None if scaler is None else scaler.var,
        0 if scaler is None else scaler.count,
        -1 if rule.plain else OPTIMIZERS.index(rule.optimizer), rule.l2, rule.l1,
        state.first, state.second, state.cum_l1, state.max_cum_l1,
    )  # fmt: skip
    if learned < 0:
        return None
    if scaler is not None:
        scaler.count = count
    if learned == 0:  # no step: the state stays as it was (no zero vectors where it had none)
        return outputs, new_bias, learned, rule_state
    state.max_cum_l1 = max_cum
    return outputs, new_bias, learned, state


def _kernel_state(rule: Rule, state: RuleState, d: int) -> RuleState:
    """The state vectors the kernel steps in place: the rule's, zeros where it has none yet (as the
    numpy rule starts them); none the rule does not use."""
    adaptive = rule.optimizer != "sgd"
    state.first = (state.first if state.first is not None else np.zeros(d)) if adaptive else None
    state.second = (
        (state.second if state.second is not None else np.zeros(d)) if rule.optimizer == "adam" else None
    )
    state.cum_l1 = (state.cum_l1 if state.cum_l1 is not None else np.zeros(d)) if rule.l1 else None
    return state


def mini_batch(
    rows: FloatArray,
    y: ArrayLike,
    weights: FloatArray,
    bias: float,
    rate: float,
    intercept_rate: float,
    loss_code: int | None,
    scores_out: FloatArray,
    refused_out: NDArray[np.int8],
) -> tuple[FloatArray, float, int] | None:
    """The mini-batch kernel: outputs, the new bias, the rows the step used. ``None`` as in
    :func:`per_event`, and when the step would not be finite (the reference finds the rows to blame)."""
    batch = _batch(rows, y, weights.shape[0])
    if compiled is None or loss_code is None or batch is None:
        return None
    outputs = np.empty(rows.shape[0])
    new_bias, used = compiled.score_then_step(
        rows, batch[1], weights, bias, rate, intercept_rate, scores_out, outputs, refused_out, loss_code
    )
    if used < 0:
        return None
    return outputs, new_bias, used


class SparseStatistics(Protocol):
    """What the sparse kernel reads and updates of a per-feature scaler (``sparse.py``'s)."""

    counts: NDArray[np.int64]
    mean: FloatArray
    var: FloatArray


def sparse_per_event(
    indptr: NDArray[np.int64],
    indices: NDArray[np.int64],
    values: FloatArray,
    scaled: NDArray[np.bool_],
    labels: FloatArray,
    weights: FloatArray,
    bias: float,
    t: int,
    schedule: Schedule,
    intercept_schedule: Schedule,
    loss_code: int | None,
    scaler: SparseStatistics | None,
    scores_out: FloatArray,
    refused_out: NDArray[np.int8],
    squares: float = math.nan,
) -> tuple[FloatArray, float, int, float] | None:
    """The per-event kernel over sparse rows (plain SGD): outputs, the new bias, the rows learned,
    and ``squares`` (the weights' sum of squares before, NaN when not known) with the steps' changes
    added. ``weights`` and the scaler change in place. ``None``: no kernel, or a batch the numpy
    reference then names (the kernel changed nothing)."""
    if compiled is None or loss_code is None:
        return None
    outputs = np.empty(labels.shape[0])
    new_bias, learned, squares = compiled.sparse_score_then_learn(
        indptr, indices, values, scaled.view(np.uint8), labels, weights, bias, t,
        schedule.learning_rate, intercept_schedule.learning_rate, schedule.power,
        schedule.name == "invscaling", scores_out, outputs, refused_out, loss_code,
        None if scaler is None else scaler.counts, None if scaler is None else scaler.mean,
        None if scaler is None else scaler.var, squares,
    )  # fmt: skip
    if learned < 0:
        return None
    return outputs, new_bias, learned, squares
