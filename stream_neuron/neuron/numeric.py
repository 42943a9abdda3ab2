"""Numerically guarded primitives shared by the neurons: sigmoid, log loss and input checks.

Everything here works on numpy arrays and never touches model state, so a check that raises leaves
the caller's weights untouched.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


def sigmoid(z: Any) -> Any:
    """P(y=1) for logits ``z`` (an array, or one float), without overflow for any finite ``z``.

    ``sigmoid(z) = (1 + tanh(z / 2)) / 2``: tanh saturates instead of overflowing. Absolute error
    ~1e-16; the log loss is computed from ``z`` (:func:`log_loss_from_scores`), never from a rounded
    ``p``.

    >>> sigmoid(np.array([-1e6, 0.0, 1e6])).tolist(), sigmoid(0.0)
    ([0.0, 0.5, 1.0], 0.5)
    """
    if isinstance(z, float | int):
        return 0.5 * math.tanh(0.5 * z) + 0.5
    p = np.multiply(z, 0.5)
    np.tanh(p, out=p)
    p *= 0.5
    p += 0.5
    return p


def river_dot(w: FloatArray, x: FloatArray, first: NDArray[np.bool_] | None = None) -> float:
    """``w . x`` summed left to right, as river's dict models sum an event's features (BLAS's ddot
    sums in another order, and where a large rate makes the descent amplify rounding, the weights
    would drift from river's). ``first``: the entries river is handed first (an open row's one-hot
    values: its union of numbers and one-hot gives those before the numbers).

    >>> ones = np.ones(3)
    >>> river_dot(np.array([1e16, 1.0, -1e16]), ones), river_dot(np.array([1e16, -1e16, 1.0]), ones)
    (0.0, 1.0)
    """
    products = w * x
    if first is not None and first.any():
        products = np.concatenate((products[first], products[~first]))
    return float(np.cumsum(products)[-1]) if products.size else 0.0


# Above this norm no square that underflowed could have mattered to it (the dot's fast path holds).
_SQUARES_EXACT_ABOVE = 1e-140


def robust_norm(weights: FloatArray, sum_of_squares: Callable[[FloatArray], float] | None = None) -> float:
    """The Euclidean norm, without overflowing for weights near the float64 limit; ``sum_of_squares``
    replaces numpy's dot for the usual one-pass case (a compiled loop, say).

    >>> robust_norm(np.array([3e300, 4e300]))
    5e+300
    """
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow takes the scaled path below
        squares = float(np.dot(weights, weights)) if sum_of_squares is None else sum_of_squares(weights)
        plain = math.sqrt(squares)  # one pass, no copy: the usual case
    if math.isfinite(plain) and plain > _SQUARES_EXACT_ABOVE:
        return plain
    scale = float(np.max(np.abs(weights))) if weights.size else 0.0
    if scale == 0.0 or not math.isfinite(scale):  # no weights, or one is infinite (or NaN): that is the norm
        return scale
    return scale * float(np.linalg.norm(weights / scale))


def log_loss_from_scores(z: FloatArray, y: FloatArray) -> FloatArray:
    """Per-row log loss of labels ``y`` in {0, 1} given logits ``z``.

    Computed as ``log(1 + exp(z)) - y*z`` so that a confident wrong answer costs ``|z|`` instead of
    ``-log(0) = inf``.

    >>> log_loss_from_scores(np.array([0.0, 1e6, -1e6]), np.array([1.0, 1.0, 1.0])).tolist()
    [0.6931471805599453, 0.0, 1000000.0]
    """
    return np.logaddexp(0.0, z) - y * z


def as_matrix(X: ArrayLike, n_features: int) -> FloatArray:
    """``X`` as a finite float64 matrix of shape (n, n_features); a 1-D row becomes (1, n_features)."""
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2 or arr.shape[1] != n_features:
        raise ValueError(f"expected {n_features} features per row, got an array of shape {np.shape(X)}")
    if not np.isfinite(arr).all():
        bad_row, bad_col = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(
            f"feature {bad_col} of row {bad_row} is {arr[bad_row, bad_col]}: features must be finite"
        )
    return arr


def as_row(x: ArrayLike, n_features: int) -> FloatArray:
    """``x`` as one finite float64 row of length ``n_features``."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"expected one row of {n_features} features, got an array of shape {arr.shape}")
    row: FloatArray = as_matrix(arr, n_features)[0]
    return row


def labels_all_valid(y: FloatArray, allowed: tuple[float, ...]) -> bool:
    """True when every entry of ``y`` is in ``allowed`` (no NaN): one polynomial and one dot product,
    the fast path for a fully labelled batch. False means "look closer" (:func:`as_labels`)."""
    residual = y - allowed[0]
    for value in allowed[1:]:
        residual *= y - value
    return bool(residual @ residual == 0.0)


def as_labels(y: ArrayLike, n_rows: int, allowed: tuple[float, ...], *, allow_missing: bool) -> FloatArray:
    """``y`` as a float64 vector of length ``n_rows`` whose values lie in ``allowed`` (or are NaN, when
    ``allow_missing``: an unlabelled row)."""
    arr = np.asarray(y, dtype=np.float64).reshape(-1)
    if arr.shape[0] != n_rows:
        raise ValueError(f"expected {n_rows} labels, got {arr.shape[0]}")
    valid = np.isnan(arr) if allow_missing else np.zeros(n_rows, dtype=bool)
    for value in allowed:
        valid |= arr == value
    if not valid.all():
        bad = arr[~valid][0]
        kinds = ", ".join(f"{a:g}" for a in allowed) + (" or missing" if allow_missing else "")
        raise ValueError(f"label {bad} is not one of {kinds}")
    return arr


def as_label(y: float | bool, allowed: tuple[float, ...]) -> float:
    """One label as a float in ``allowed``."""
    value = float(y)
    if value not in allowed:
        raise ValueError(f"label {y!r} is not one of {', '.join(f'{a:g}' for a in allowed)}")
    return value


def out_buffer(n_rows: int, given: NDArray[Any] | None, dtype: type[np.generic]) -> NDArray[Any]:
    """``given`` when it is a contiguous array of ``n_rows`` ``dtype``, a new one when it is ``None``."""
    if given is None:
        return np.zeros(n_rows, dtype=dtype)
    if given.shape != (n_rows,) or given.dtype != dtype or not given.flags.c_contiguous:
        raise ValueError(
            f"an output buffer must be a contiguous {np.dtype(dtype).name} array of shape ({n_rows},)"
        )
    return given
