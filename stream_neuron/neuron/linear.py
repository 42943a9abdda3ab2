"""The shared core of both neurons: weights, bias, schedules, optional scaler, update bookkeeping.

The public classes (:class:`LogisticNeuron`, :class:`Perceptron`) are thin: they choose the loss, the
label domain and what ``predict`` means. Every public method validates its whole input before it
touches any state, so a bad batch raises ``ValueError`` and leaves the model as it was.
"""

from __future__ import annotations

import math
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike

from stream_neuron.neuron import accel
from stream_neuron.neuron.numeric import (
    FloatArray,
    as_label,
    as_labels,
    as_matrix,
    as_row,
    labels_all_valid,
    sigmoid,
)
from stream_neuron.neuron.scaler import OnlineStandardScaler
from stream_neuron.neuron.schedules import Schedule, ScheduleName
from stream_neuron.neuron.sequential import Loss, score_then_learn_rows


class LinearNeuron:
    """``z = w . x + b`` trained by (mini-batch) gradient descent on a given loss."""

    kind: str = "linear"
    loss: Loss = "log"
    labels: tuple[float, ...] = (0.0, 1.0)

    def __init__(
        self,
        n_features: int,
        learning_rate: float,
        intercept_learning_rate: float | None = None,
        schedule: ScheduleName = "constant",
        power: float = 0.5,
        standardize: bool = False,
    ) -> None:
        if not isinstance(n_features, int | np.integer) or n_features < 1:
            raise ValueError(f"n_features must be a positive integer, got {n_features!r}")
        self.n_features = int(n_features)
        self.schedule = Schedule(schedule, float(learning_rate), power)
        intercept_rate = learning_rate if intercept_learning_rate is None else intercept_learning_rate
        self.intercept_schedule = Schedule(schedule, float(intercept_rate), power)
        self.scaler = OnlineStandardScaler(self.n_features) if standardize else None
        self._weights = np.zeros(self.n_features)
        self.bias = 0.0
        self.n_updates = 0

    @property
    def weights(self) -> FloatArray:
        """The weight vector (a read-only view: change the model through its methods)."""
        view = self._weights.view()
        view.flags.writeable = False
        return view

    @property
    def learning_rate(self) -> float:
        """The rate the next update will use."""
        return self.schedule.rate(self.n_updates)

    def decision_function(self, X: ArrayLike) -> FloatArray:
        """The logits ``z = w . x + b`` (after scaling, when standardising) of each row."""
        rows = as_matrix(X, self.n_features)
        return self._scaled(rows) @ self._weights + self.bias

    def _scaled(self, rows: FloatArray) -> FloatArray:
        return rows if self.scaler is None else self.scaler.transform(rows)

    def _label(self, y: float | bool) -> float:
        return self._canonical_label(as_label(y, self.labels))

    def _labels(self, y: ArrayLike, n_rows: int, allow_missing: bool) -> FloatArray:
        return self._canonical_labels(as_labels(y, n_rows, self.labels, allow_missing=allow_missing))

    def _canonical_label(self, label: float) -> float:
        """The label as the loss expects it (the perceptron maps 0 to -1)."""
        return label

    def _canonical_labels(self, labels: FloatArray) -> FloatArray:
        """Vector form of :meth:`_canonical_label`; never writes into ``labels`` (the caller's array)."""
        return labels

    def _loss_gradient(self, z: FloatArray, y: FloatArray) -> FloatArray:
        if self.loss == "log":
            return sigmoid(z) - y
        return np.where(y * z <= 0.0, -y, 0.0)

    def _learn_one(self, x: ArrayLike, y: float | bool) -> None:
        row = as_row(x, self.n_features)
        label = self._label(y)
        if self.scaler is not None:
            self.scaler.learn_one(row)
            row = self.scaler.transform(row.reshape(1, -1))[0]
        z = np.array([row @ self._weights + self.bias])
        g = float(self._loss_gradient(z, np.array([label]))[0])
        self._step(row * g, g)

    def _learn_batch(self, X: ArrayLike, y: ArrayLike) -> None:
        rows = as_matrix(X, self.n_features)
        labels = self._labels(y, rows.shape[0], allow_missing=False)
        if rows.shape[0]:
            self._batch_step(rows, labels, None)

    def _batch_step(self, rows: FloatArray, labels: FloatArray, z: FloatArray | None) -> None:
        """One step with the mean gradient of validated ``rows`` (river's ``learn_many``). ``z``: the
        rows' logits when the caller already has them (no scaler: they are the pre-step logits)."""
        if self.scaler is not None:
            for row in rows:
                self.scaler.learn_one(row)
            rows = self.scaler.transform(rows)
            z = None
        if z is None:
            z = rows @ self._weights + self.bias
        g = self._loss_gradient(z, labels)
        self._step(g @ rows / rows.shape[0], float(g.sum()) / rows.shape[0])

    def _step(self, weight_gradient: FloatArray, bias_gradient: float) -> None:
        t = self.n_updates
        self._weights -= self.schedule.rate(t) * weight_gradient
        self.bias -= self.intercept_schedule.rate(t) * bias_gradient
        self.n_updates = t + 1

    def _checked_labels(self, y: ArrayLike, n_rows: int) -> FloatArray:
        """Labels of a hot-path batch: one cheap test for the usual fully labelled batch, the precise
        check (NaN allowed, a clear error otherwise) only when that test fails."""
        labels = np.asarray(y, dtype=np.float64).reshape(-1)
        if labels.shape[0] == n_rows and labels_all_valid(labels, self.labels):
            return self._canonical_labels(labels)
        return self._labels(labels, n_rows, allow_missing=True)

    def score_then_learn(
        self, X: ArrayLike, y: ArrayLike, scores_out: FloatArray | None = None
    ) -> FloatArray:
        """Per-event hot path: each row's output with the weights from before it, then its step."""
        return self._score_then_learn(X, y, scores_out)

    def score_then_learn_batch(
        self, X: ArrayLike, y: ArrayLike, scores_out: FloatArray | None = None
    ) -> FloatArray:
        """Mini-batch hot path: outputs with the weights from before the batch, then one step."""
        return self._score_then_learn_batch(X, y, scores_out)

    def _outputs(self, z: FloatArray) -> FloatArray:
        """What the model outputs for logits ``z`` (P(y=1), or the perceptron's +1/-1)."""
        raise NotImplementedError

    def _per_row_rates(self, labels: FloatArray) -> tuple[FloatArray, FloatArray]:
        """The weight and intercept rates of each row's step: one value for all under a constant
        schedule, else each labelled row's own update number, so a schedule decays as in learn_one."""
        if self.schedule.name == "constant":
            return (
                np.array([self.schedule.learning_rate]),
                np.array([self.intercept_schedule.learning_rate]),
            )
        labelled = labels == labels
        count = max(int(np.count_nonzero(labelled)), 1)
        update_index = np.maximum(np.cumsum(labelled) - 1, 0)
        return (
            self.schedule.rates(self.n_updates, count)[update_index],
            self.intercept_schedule.rates(self.n_updates, count)[update_index],
        )

    def _compiled_hot_path(
        self, X: ArrayLike, y: ArrayLike, scores_out: FloatArray | None, per_event: bool
    ) -> FloatArray | None:
        """Both hot paths through the compiled kernels; ``None`` hands the batch to the numpy reference
        (which raises the precise error for a bad batch; the kernels change nothing in that case)."""
        kernels = accel.compiled
        if kernels is None or self.scaler is not None:
            return None
        rows = np.ascontiguousarray(X, dtype=np.float64)
        labels = np.ascontiguousarray(y, dtype=np.float64).reshape(-1)
        if rows.ndim != 2 or rows.shape[1] != self.n_features or labels.shape[0] != rows.shape[0]:
            return None
        z = self._scores_buffer(rows.shape[0], scores_out)
        outputs = np.empty(rows.shape[0])
        loss, t = accel.LOSS_CODES[self.loss], self.n_updates
        if per_event:
            rates_w, rates_b = self._per_row_rates(labels)
            bias, labelled = kernels.score_then_learn(
                rows, labels, self._weights, self.bias, rates_w, rates_b, z, outputs, loss
            )
        else:
            bias, labelled = kernels.score_then_step(
                rows,
                labels,
                self._weights,
                self.bias,
                self.schedule.rate(t),
                self.intercept_schedule.rate(t),
                z,
                outputs,
                loss,
            )
        if labelled < 0:
            return None
        self.bias = bias
        self.n_updates = t + (labelled if per_event else int(labelled > 0))
        return outputs

    def _score_then_learn(self, X: ArrayLike, y: ArrayLike, scores_out: FloatArray | None) -> FloatArray:
        compiled = self._compiled_hot_path(X, y, scores_out, per_event=True)
        if compiled is not None:
            return compiled
        rows = as_matrix(X, self.n_features)
        n = rows.shape[0]
        labels = self._checked_labels(y, n)
        z = self._scores_buffer(n, scores_out)
        labelled = labels == labels  # NaN marks an unlabelled row
        rates_w, rates_b = self._per_row_rates(labels)
        if rates_w.shape[0] != n:
            rates_w, rates_b = np.full(n, rates_w[0]), np.full(n, rates_b[0])
        if self.scaler is None:
            score_rows = learn_rows = rows
        else:
            score_rows, learn_rows = self.scaler.sequence(rows, labelled)
        self.bias = score_then_learn_rows(
            score_rows, learn_rows, labels, self._weights, self.bias, rates_w, rates_b, self.loss, z
        )
        self.n_updates += int(np.count_nonzero(labelled))
        return self._outputs(z)

    def _score_then_learn_batch(
        self, X: ArrayLike, y: ArrayLike, scores_out: FloatArray | None
    ) -> FloatArray:
        compiled = self._compiled_hot_path(X, y, scores_out, per_event=False)
        if compiled is not None:
            return compiled
        rows = np.asarray(X, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != self.n_features or self.scaler is not None:
            # The scaler maps zero-variance features to 0 (NaN included), so it needs the full check.
            rows = as_matrix(rows, self.n_features)
        n = rows.shape[0]
        labels = self._checked_labels(y, n)
        z = self._scores_buffer(n, scores_out)
        np.matmul(rows if self.scaler is None else self.scaler.transform(rows), self._weights, out=z)
        z += self.bias
        # A NaN or infinite feature makes its logit non-finite, even at zero weights (0 * inf is
        # NaN), so one dot product screens the batch; as_matrix then names the culprit.
        if not math.isfinite(z @ z):
            as_matrix(rows, self.n_features)
        outputs = self._outputs(z)
        labelled = labels == labels
        if labelled.all():
            self._batch_step(rows, labels, z)
        elif labelled.any():
            self._batch_step(rows[labelled], labels[labelled], None)
        return outputs

    @staticmethod
    def _scores_buffer(n_rows: int, scores_out: FloatArray | None) -> FloatArray:
        if scores_out is None:
            return np.empty(n_rows)
        if (
            scores_out.shape != (n_rows,)
            or scores_out.dtype != np.float64
            or not scores_out.flags.c_contiguous
        ):
            raise ValueError(f"scores_out must be a contiguous float64 array of shape ({n_rows},)")
        return scores_out

    def to_dict(self) -> dict[str, Any]:
        """The whole model state as plain JSON-able values; :meth:`from_dict` restores it exactly."""
        return {
            "kind": self.kind,
            "n_features": self.n_features,
            "weights": self._weights.tolist(),
            "bias": self.bias,
            "n_updates": self.n_updates,
            "schedule": self.schedule.to_dict(),
            "intercept_schedule": self.intercept_schedule.to_dict(),
            "scaler": None if self.scaler is None else self.scaler.to_dict(),
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Self:
        """A model restored from :meth:`to_dict`'s output (exact round trip)."""
        model = cls(int(state["n_features"]), float(state["schedule"]["learning_rate"]))
        model.load_dict(state)
        return model

    def load_dict(self, state: dict[str, Any]) -> None:
        """Replace this model's state with ``state`` (as written by :meth:`to_dict`)."""
        if state.get("kind") != self.kind:
            raise ValueError(f"state is for a {state.get('kind')!r} model, not {self.kind!r}")
        weights = np.asarray(state["weights"], dtype=np.float64)
        if weights.shape != (self.n_features,) or not np.isfinite(weights).all():
            raise ValueError(f"state weights must be {self.n_features} finite numbers")
        scaler = None if state.get("scaler") is None else OnlineStandardScaler.from_dict(state["scaler"])
        if scaler is not None and scaler.n_features != self.n_features:
            raise ValueError("state scaler has the wrong number of features")
        self.schedule = Schedule.from_dict(state["schedule"])
        self.intercept_schedule = Schedule.from_dict(state["intercept_schedule"])
        self._weights = weights.copy()
        self.bias = float(state["bias"])
        self.n_updates = int(state["n_updates"])
        self.scaler = scaler
