"""Rows that carry only the features an event has, and the step that touches only those.

river's linear models take a dict per event: a feature gets a weight the first time it appears, an
absent feature takes no part in the dot product nor in the step (its optimizer state and its L1
total do not move either), and ``StandardScaler`` keeps a count per feature, so each feature is
scaled with the statistics of the events it was present in. :class:`SparseRows` is a batch of such
events in compressed sparse row form; ``sparse_state.SparseScaler`` is river's scaler on dicts; the model
steps through :func:`score_then_learn_sparse` and :func:`score_then_learn_batch_sparse`, which do
river's arithmetic on the present features only.

With every feature present in every row, both equal the dense paths bit for bit (the dense scaler's
one count is then every feature's count).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from stream_neuron.neuron import accel
from stream_neuron.neuron.losses import Loss
from stream_neuron.neuron.numeric import FloatArray, as_matrix, river_dot
from stream_neuron.neuron.optimizers import Rule, RuleState
from stream_neuron.neuron.refusals import ACCEPTED, REFUSED_SCORE, REFUSED_STEP, guarded_batch_step
from stream_neuron.neuron.schedules import Schedule
from stream_neuron.neuron.sparse_rows import IndexArray, SparseRows
from stream_neuron.neuron.sparse_state import (
    PACKED_TYPES,
    SnapshotScratch,
    SparseScaler,
    bitmap_index,
    gathered,
    packed,
    packed_bits,
    scattered,
    unpacked,
    widened,
)

# The kept sum of squares is summed again from the weights after this many updates (a sum of
# 2^20 buckets every 65,536 events costs 16 of them an event; its rounding: at most 50 features x 2^16
# events x 2^-53 of |w|^2, 4e-10, and in practice far less).
RESUM_EVERY = 2**16
# Under this the kept sum is not trusted (squares that underflowed, or rounding near 0).
_SQUARES_KEPT_ABOVE = 1e-280


def _scored(model: SparseSteps, idx: IndexArray, x: FloatArray, scaled: NDArray[np.bool_]) -> FloatArray:
    scaler = model.sparse_scaler
    if scaler is None or not scaled.any():
        return x
    out = x.copy()
    out[scaled] = scaler.transform(idx[scaled], x[scaled])
    return out


def score_then_learn_sparse(
    model: SparseSteps, rows: SparseRows, labels: FloatArray, z: FloatArray, refused: NDArray[np.int8]
) -> None:
    """The per-event step: each row scored with the model from before it, then, when labelled, one
    step on its present features only. Logits into ``z``, refusals into ``refused``. Plain SGD runs
    in the compiled kernel when it is built; the loop below is the reference it is tested against."""
    if model.rule.plain and model.compiled_sparse_step(rows, labels, z, refused):
        return
    rows = model.checked_sparse_rows(rows)  # the kernel did not take them: what is wrong is named here
    for r in range(rows.n_rows):
        z[r], refused[r] = _score_and_learn_sparse_row(model, *rows.row(r), float(labels[r]))


def _score_and_learn_sparse_row(
    model: SparseSteps, idx: IndexArray, x: FloatArray, scaled: NDArray[np.bool_], label: float
) -> tuple[float, int]:
    weights = model.mutable_weights()
    scored = _scored(model, idx, x, scaled)
    z = river_dot(weights[idx], scored, ~scaled) + model.bias
    if not math.isfinite(z):
        return z, REFUSED_SCORE
    if label != label:
        return z, ACCEPTED
    scaler, stats, learned, z_learned = model.sparse_scaler, None, scored, z
    if scaler is not None and scaled.any():
        stats = scaler.absorbed(idx[scaled], x[scaled])
        learned = x.copy()
        learned[scaled] = scaler.transform(idx[scaled], x[scaled], stats)
        z_learned = river_dot(weights[idx], learned, ~scaled) + model.bias
        if not (np.isfinite(stats[0]).all() and np.isfinite(stats[1]).all() and math.isfinite(z_learned)):
            return z, REFUSED_STEP
    t = model.n_updates
    g = model.loss.gradient_one(z_learned, model.loss.canonical_one(label))
    new_weights, part = model.rule_step_on(idx, g * learned, t)
    bias = model.bias - model.intercept_schedule.rate(t) * g
    if not (math.isfinite(bias) and np.isfinite(new_weights).all() and part.finite()):
        return z, REFUSED_STEP
    if stats is not None:
        scaler.accept(idx[scaled], *stats)  # type: ignore[union-attr]
    model.commit_step(idx, new_weights, part, bias)
    return z, ACCEPTED


def score_then_learn_batch_sparse(
    model: SparseSteps, rows: SparseRows, labels: FloatArray, z: FloatArray, refused: NDArray[np.int8]
) -> None:
    """The mini-batch reference: every row scored with the model from before the batch, then one
    step with the mean gradient over the labelled rows, on the features present in any of them
    (river's ``learn_many`` on the batch's columns). A row whose own step would leave the model
    non-finite is left out, as in the dense path."""
    weights = model.mutable_weights()
    for r in range(rows.n_rows):
        idx, x, scaled = rows.row(r)
        z[r] = float(weights[idx] @ _scored(model, idx, x, scaled)) + model.bias
    refused[:] = np.where(np.isfinite(z[: rows.n_rows]), ACCEPTED, REFUSED_SCORE)
    usable = (labels == labels) & (refused == ACCEPTED)
    if usable.any():
        guarded_batch_step(
            lambda rows_in, commit: try_sparse_batch_step(model, rows.take(rows_in), labels[rows_in], commit),
            usable,
            refused,
        )


def try_sparse_batch_step(
    model: SparseSteps, rows: SparseRows, labels: FloatArray, commit: bool = True
) -> bool:
    """One step with the mean gradient of labelled ``rows`` (river's ``learn_many`` on the rows'
    columns), taken (when ``commit``) only if the model stays finite; whether it would."""
    scaler = None if model.sparse_scaler is None else model.sparse_scaler.copy()
    values = rows.values
    if scaler is not None:
        for r in range(rows.n_rows):
            idx, x, scaled = rows.row(r)
            scaler.learn(idx[scaled], x[scaled])
        if not scaler.finite():
            return False
        values = values.copy()
        values[rows.scaled] = scaler.transform(rows.indices[rows.scaled], rows.values[rows.scaled])
    weights = model.mutable_weights()
    row_of_entry = np.repeat(np.arange(rows.n_rows), np.diff(rows.indptr))
    products = weights[rows.indices] * values
    z: FloatArray = np.bincount(row_of_entry, products, minlength=rows.n_rows).astype(np.float64) + model.bias
    g = np.asarray(model.loss.gradient(z, model.loss.canonical(labels)))
    present, where = np.unique(rows.indices, return_inverse=True)
    n, t = rows.n_rows, model.n_updates
    feature_gradient = np.bincount(where, g[row_of_entry] * values, minlength=present.size) / n
    new_weights, part = model.rule_step_on(present, feature_gradient, t)
    bias = model.bias - model.intercept_schedule.rate(t) * (float(g.sum()) / n)
    if not (math.isfinite(bias) and np.isfinite(new_weights).all() and part.finite()):
        return False
    if commit:
        model.commit_step(present, new_weights, part, bias)
        if scaler is not None:
            model.sparse_scaler = scaler
    return True


class SparseSteps:
    """What a model needs to learn from :class:`SparseRows` (a base of ``LinearNeuron``): the step
    of a rule on some features, its commit, and growing to take new features."""

    loss: ClassVar[Loss]
    rule: Rule
    rule_state: RuleState
    schedule: Schedule
    intercept_schedule: Schedule
    n_features: int
    n_updates: int
    bias: float
    sparse_scaler: SparseScaler | None
    _weights: FloatArray
    # The weights' sum of squares as the compiled kernel's steps keep it, true of the array it was
    # taken of at the update count it was taken at: any other step (numpy's, a mini-batch's), a
    # restore or a growth leaves it stale, and the next norm sums every weight again.
    _squares: float = math.nan
    _squares_of: FloatArray | None = None
    _squares_at: int = -1
    _summed_at: int = -1  # the update count of the last sum over every weight
    _snapshot_scratch: SnapshotScratch | None = None

    def mutable_weights(self) -> FloatArray:
        return self._weights

    def _kept_squares(self) -> float:
        current = self._squares_of is self._weights and self._squares_at == self.n_updates
        return self._squares if current else math.nan

    def _keep_squares(self, squares: float) -> None:
        self._squares, self._squares_of, self._squares_at = squares, self._weights, self.n_updates

    def sparse_weight_norm(self) -> float:
        """|w| without a pass over every weight while the kernel's steps keep the sum of squares (of
        2^20 buckets, that pass is the most of a metrics record's cost). The kept sum is summed
        again from the weights every RESUM_EVERY updates, so its rounding stays within about
        1e-9 of it; an overflowing or vanishing sum takes ``robust_norm``'s scaled path."""
        squares = self._kept_squares()
        if not squares > _SQUARES_KEPT_ABOVE or self.n_updates - self._summed_at > RESUM_EVERY:
            squares = accel.sum_of_squares(self._weights)
            self._summed_at = self.n_updates
            self._keep_squares(squares)
        norm = math.sqrt(squares) if squares > _SQUARES_KEPT_ABOVE else math.nan
        return norm if math.isfinite(norm) else accel.weight_norm(self._weights)

    def compiled_sparse_step(
        self, rows: SparseRows, labels: FloatArray, z: FloatArray, refused: NDArray[np.int8]
    ) -> bool:
        """The rows through the compiled kernel (plain SGD); ``False`` when it did not run them."""
        scaler = self.sparse_scaler
        ran = accel.sparse_per_event(
            rows.indptr, rows.indices, rows.values, rows.scaled, np.ascontiguousarray(labels), self._weights,
            self.bias, self.n_updates, self.schedule, self.intercept_schedule, self.loss.kernel_code, scaler,
            z, refused, self._kept_squares(),
        )  # fmt: skip
        if ran is None:
            return False
        _, self.bias, learned, squares = ran
        self.n_updates += learned
        self._keep_squares(squares)
        return True

    def rule_step_on(
        self, idx: IndexArray, feature_gradient: FloatArray, t: int
    ) -> tuple[FloatArray, RuleState]:
        """The weights (and rule state) of features ``idx`` one step on at count ``t``: river's
        optimizers and penalties see only the features an event has."""
        rate = self.schedule.rate(t)
        if self.rule.plain:
            return self._weights[idx] - rate * feature_gradient, RuleState()
        return self.rule.step(
            self._weights[idx], feature_gradient, rate, self.schedule.rate(t + 1), t,
            gathered(self.rule_state, idx),
        )  # fmt: skip

    def commit_step(self, idx: IndexArray, weights: FloatArray, part: RuleState, bias: float) -> None:
        self._weights[idx] = weights
        if not self.rule.plain:
            self.rule_state = scattered(self.rule_state, idx, part, self.n_features)
        self.bias = bias
        self.n_updates += 1

    def checked_sparse_rows(self, X: Any) -> SparseRows:
        """Sparse rows within this model's features, their values checked finite (a dense matrix
        becomes rows with every feature present)."""
        if not isinstance(X, SparseRows):
            return SparseRows.from_dense(as_matrix(X, self.n_features))
        if X.width > self.n_features or (X.indices.size and int(X.indices.min()) < 0):
            raise ValueError(f"a row has a feature index outside the model's {self.n_features}")
        if not np.isfinite(X.values).all():
            raise ValueError("features must be finite numbers")
        return X

    def sparse_logits(self, rows: SparseRows) -> FloatArray:
        """Every row's logit with the current model, at once."""
        values = rows.values
        if self.sparse_scaler is not None and rows.scaled.any():
            values = values.copy()
            values[rows.scaled] = self.sparse_scaler.transform(rows.indices[rows.scaled], values[rows.scaled])
        row_of_entry = np.repeat(np.arange(rows.n_rows), np.diff(rows.indptr))
        products = self._weights[rows.indices] * values
        z: FloatArray = np.bincount(row_of_entry, products, minlength=rows.n_rows).astype(np.float64)
        return z + self.bias

    def sparse_state(self) -> dict[str, Any]:
        """The per-feature arrays (weights, the scaler's, the rule's) as little-endian binary in
        base64 (8 bytes a number, where JSON text takes up to 26): all of them when most features are
        touched, else only at the features where any is not 0 (``index``: 4 bytes each, or, when
        that is smaller, ``{"bits"}``, a bit per feature). Of 2^20 hashed buckets, a snapshot holds
        the ones touched, or all of them in 11 MiB."""
        arrays: dict[str, NDArray[Any]] = {"weights": self._weights}
        if self.sparse_scaler is not None:
            scaler = self.sparse_scaler
            arrays.update(counts=scaler.counts, mean=scaler.mean, var=scaler.var)
        state = self.rule_state
        for name, array in (("first", state.first), ("second", state.second), ("cum_l1", state.cum_l1)):
            if array is not None:
                arrays[name] = array
        scratch = self._snapshot_scratch = self._snapshot_scratch or SnapshotScratch()
        bits, count = scratch.touched(list(arrays.values()))
        per_feature = 8 * len(arrays)
        listed, bitmap = 4 * count, (self.n_features + 7) // 8
        if count * per_feature + min(listed, bitmap) < self.n_features * per_feature:
            where: str | dict[str, str]
            if bitmap < listed:  # most features touched: a bit each says which
                where = {"bits": packed_bits(bits)}
            else:
                features = np.unpackbits(bits, count=self.n_features, bitorder="little")
                where = packed(np.flatnonzero(features), "<i4")
            picked = {
                name: packed(scratch.gathered(bits, array, count), PACKED_TYPES[name])
                for name, array in arrays.items()
            }
            return {"index": where, **picked}
        return {"index": None, **{name: packed(array, PACKED_TYPES[name]) for name, array in arrays.items()}}

    @staticmethod
    def loaded_sparse_state(
        state: dict[str, Any], n_features: int
    ) -> tuple[FloatArray, SparseScaler | None, dict[str, FloatArray]]:
        """The weights, scaler and rule arrays of :meth:`sparse_state`'s output, checked."""
        index: NDArray[np.int64] | None = None
        if isinstance(state["index"], dict):
            index = bitmap_index(state["index"], n_features)
        elif state["index"] is not None:
            index = unpacked(state["index"], "<i4").astype(np.int64)
            if index.size and (index.min() < 0 or index.max() >= n_features):
                raise ValueError(f"sparse state: indices must be features 0 to {n_features - 1}")
            if np.unique(index).size != index.size:
                raise ValueError("sparse state: an index appears twice")
        size = n_features if index is None else index.size

        def full(name: str) -> NDArray[Any]:
            values = unpacked(state[name], PACKED_TYPES[name])
            if values.shape != (size,) or not np.isfinite(values).all():
                raise ValueError(f"sparse state: {name} must be {size} finite numbers")
            if index is None:
                return values.astype(values.dtype.newbyteorder("="))
            out: NDArray[Any] = np.zeros(n_features, dtype=values.dtype.newbyteorder("="))
            out[index] = values
            return out

        scaler = None
        if "counts" in state:
            scaler = SparseScaler.from_dict(
                {"counts": full("counts"), "mean": full("mean"), "var": full("var")}
            )
        arrays: dict[str, FloatArray] = {n: full(n) for n in ("first", "second", "cum_l1") if n in state}
        weights: FloatArray = full("weights")
        return weights, scaler, arrays

    def grow(self, n_features: int) -> None:
        """Take features up to ``n_features`` (an open vocabulary's new names), each at weight 0."""
        if n_features <= self.n_features:
            return
        self._weights = widened(self._weights, n_features)
        state = self.rule_state
        first, second, cum = (
            None if a is None else widened(a, n_features) for a in (state.first, state.second, state.cum_l1)
        )
        self.rule_state = RuleState(first, second, state.max_cum_l1, cum)
        if self.sparse_scaler is not None:
            self.sparse_scaler.grow(n_features)
        self.n_features = n_features
