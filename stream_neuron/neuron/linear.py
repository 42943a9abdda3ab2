"""The shared core of every neuron: ``z = w . x + b`` trained by gradient descent on the kind's loss.

A kind of model (:class:`LogisticNeuron`, :class:`Perceptron`) is one small class that sets what is
kind-specific: its loss, the labels it accepts, what it outputs for a logit, and its default rate.
Everything the stream needs from a model (label checks, prediction fields, the prequential metric
terms) is asked of the model, so the layers above never branch on its kind.

Every public method validates its whole input before it touches any state, so a bad batch raises
``ValueError`` and leaves the model as it was.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import ArrayLike

from stream_neuron.neuron import accel
from stream_neuron.neuron.losses import Loss
from stream_neuron.neuron.numeric import (
    FloatArray,
    as_label,
    as_labels,
    as_matrix,
    as_row,
    labels_all_valid,
)
from stream_neuron.neuron.scaler import OnlineStandardScaler
from stream_neuron.neuron.schedules import Schedule, ScheduleName


class LinearNeuron:
    """One neuron: weights, bias, learning-rate schedules, an optional online scaler in front."""

    kind: ClassVar[str]
    loss: ClassVar[Loss]
    labels: ClassVar[tuple[float, ...]]
    """The labels accepted on input (NaN marks an unlabelled row in the hot paths)."""
    label_domain: ClassVar[str]
    """The accepted labels in words, for error messages."""
    default_learning_rate: ClassVar[float]
    probabilistic: ClassVar[bool]
    """True when the output is P(y=1): predictions carry a probability, metrics a log loss."""

    def __init__(
        self,
        n_features: int,
        learning_rate: float | None = None,
        intercept_learning_rate: float | None = None,
        schedule: ScheduleName = "constant",
        power: float = 0.5,
        standardize: bool = False,
    ) -> None:
        if not isinstance(n_features, int | np.integer) or n_features < 1:
            raise ValueError(f"n_features must be a positive integer, got {n_features!r}")
        rate = self.default_learning_rate if learning_rate is None else float(learning_rate)
        self.n_features = int(n_features)
        self.schedule = Schedule(schedule, rate, power)
        intercept_rate = rate if intercept_learning_rate is None else float(intercept_learning_rate)
        self.intercept_schedule = Schedule(schedule, intercept_rate, power)
        self.scaler = OnlineStandardScaler(self.n_features) if standardize else None
        self._weights = np.zeros(self.n_features)
        self.bias = 0.0
        self.n_updates = 0

    # -- what the stream asks of a kind ------------------------------------------------------------

    @classmethod
    def check_label(cls, value: float) -> float:
        """``value`` when it is an accepted label, else ``ValueError`` naming the domain."""
        if value in cls.labels:
            return value
        raise ValueError(f"label must be {cls.label_domain} for the {cls.kind} model, got {value!r}")

    def outputs(self, z: FloatArray) -> FloatArray:
        """What the model outputs for logits ``z`` (P(y=1), or the perceptron's +1/-1)."""
        raise NotImplementedError

    def predicted_labels(self, outputs: FloatArray) -> FloatArray:
        """The class each output predicts, as the loss's canonical label."""
        raise NotImplementedError

    def prediction_fields(self, outputs: list[float]) -> list[str]:
        """The ``"prediction"`` and ``"probability"`` members of each prediction's JSON."""
        predicted = self.predicted_labels(np.asarray(outputs)).tolist()
        if self.probabilistic:
            # repr() of a finite float is valid JSON and round-trips exactly.
            return [
                f'"prediction": {int(label)}, "probability": {p!r}'
                for label, p in zip(predicted, outputs, strict=True)
            ]
        return [f'"prediction": {int(label)}, "probability": null' for label in predicted]

    def prequential_terms(self, z: FloatArray, outputs: FloatArray, labels: FloatArray) -> tuple[float, int]:
        """The summed loss and the count of right answers over the labelled rows (NaN = unlabelled)
        of outputs scored before their labels were learned: the terms of the prequential metrics."""
        labelled = labels == labels
        y = self.loss.canonical(labels[labelled])
        loss = float(self.loss.value(z[labelled], y).sum())
        correct = int(np.count_nonzero(self.predicted_labels(outputs[labelled]) == y))
        return loss, correct

    # -- the model -----------------------------------------------------------------------------------

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

    def predict(self, X: ArrayLike) -> Any:
        """The predicted class of each row: shape (n,), or an int for a single 1-D row."""
        labels = self.predicted_labels(self.outputs(self.decision_function(X))).astype(np.int64)
        return int(labels[0]) if np.ndim(X) == 1 else labels

    def learn_one(self, x: ArrayLike, y: float | bool) -> None:
        """One SGD step on one event: ``w -= lr * dC/dz * x``, ``b -= lr_b * dC/dz``."""
        row = as_row(x, self.n_features)
        self._score_and_learn_row(row, as_label(y, self.labels))

    def learn_batch(self, X: ArrayLike, y: ArrayLike) -> None:
        """ONE step with the mean gradient of the batch (river's ``learn_many``)."""
        rows = as_matrix(X, self.n_features)
        labels = as_labels(y, rows.shape[0], self.labels, allow_missing=False)
        if rows.shape[0]:
            self._batch_step(rows, labels, None)

    def score_then_learn(
        self, X: ArrayLike, y: ArrayLike, scores_out: FloatArray | None = None
    ) -> FloatArray:
        """The per-event hot path: for each row in order, the output with the weights from before that
        row, then one SGD step on it. ``y`` is float with NaN for an unlabelled row (scored, not
        learned). Returns the outputs; the logits go to ``scores_out`` when given."""
        compiled = self._compiled_hot_path(X, y, scores_out, per_event=True)
        if compiled is not None:
            return compiled
        rows = as_matrix(X, self.n_features)
        labels = self._checked_labels(y, rows.shape[0])
        z = self._scores_buffer(rows.shape[0], scores_out)
        for t in range(rows.shape[0]):
            z[t] = self._score_and_learn_row(rows[t], labels[t])
        return self.outputs(z)

    def score_then_learn_batch(
        self, X: ArrayLike, y: ArrayLike, scores_out: FloatArray | None = None
    ) -> FloatArray:
        """The mini-batch hot path: outputs with the weights from before the batch, then one
        mean-gradient step over its labelled rows."""
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
        np.matmul(self._scaled(rows), self._weights, out=z)
        z += self.bias
        # A NaN or infinite feature makes its logit non-finite, even at zero weights (0 * inf is
        # NaN), so one dot product screens the batch; as_matrix then names the culprit.
        if not math.isfinite(z @ z):
            as_matrix(rows, self.n_features)
        outputs = self.outputs(z)
        labelled = labels == labels
        if labelled.all():
            self._batch_step(rows, labels, z)
        elif labelled.any():
            self._batch_step(rows[labelled], labels[labelled], None)
        return outputs

    # -- the reference update rules (numpy); _kernels.c computes the same ---------------------------

    def _score_and_learn_row(self, x: FloatArray, label: float) -> float:
        """The logit of ``x`` with the current weights; then, when ``label`` is not NaN, one SGD step.

        ``label`` is an accepted label (it is made canonical here). With a scaler, ``x`` is scored with
        the statistics from before it and learned with the statistics after it (river's order)."""
        scaler = self.scaler
        scored = x if scaler is None else scaler.transform(x)
        z = float(scored @ self._weights) + self.bias
        if label != label:
            return z
        if scaler is None:
            learned, z_learned = scored, z
        else:
            scaler.learn_one(x)
            learned = scaler.transform(x)
            z_learned = float(learned @ self._weights) + self.bias
        g = float(self.loss.gradient(z_learned, self.loss.canonical_one(float(label))))
        self._step(learned * g, g)
        return z

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
        g = np.asarray(self.loss.gradient(z, self.loss.canonical(labels)))
        self._step(g @ rows / rows.shape[0], float(g.sum()) / rows.shape[0])

    def _step(self, weight_gradient: FloatArray, bias_gradient: float) -> None:
        t = self.n_updates
        self._weights -= self.schedule.rate(t) * weight_gradient
        self.bias -= self.intercept_schedule.rate(t) * bias_gradient
        self.n_updates = t + 1

    def _scaled(self, rows: FloatArray) -> FloatArray:
        return rows if self.scaler is None else self.scaler.transform(rows)

    def _checked_labels(self, y: ArrayLike, n_rows: int) -> FloatArray:
        """Labels of a hot-path batch: one cheap test for the usual fully labelled batch, the precise
        check (NaN allowed, a clear error otherwise) only when that test fails."""
        labels = np.asarray(y, dtype=np.float64).reshape(-1)
        if labels.shape[0] == n_rows and labels_all_valid(labels, self.labels):
            return labels
        return as_labels(labels, n_rows, self.labels, allow_missing=True)

    # -- the compiled kernels -----------------------------------------------------------------------

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
        if kernels is None or self.scaler is not None or self.loss.kernel_code is None:
            return None
        rows = np.ascontiguousarray(X, dtype=np.float64)
        labels = np.ascontiguousarray(y, dtype=np.float64).reshape(-1)
        if rows.ndim != 2 or rows.shape[1] != self.n_features or labels.shape[0] != rows.shape[0]:
            return None
        z = self._scores_buffer(rows.shape[0], scores_out)
        outputs = np.empty(rows.shape[0])
        code, t = self.loss.kernel_code, self.n_updates
        if per_event:
            rates_w, rates_b = self._per_row_rates(labels)
            bias, labelled = kernels.score_then_learn(
                rows, labels, self._weights, self.bias, rates_w, rates_b, z, outputs, code
            )
        else:
            rate_w, rate_b = self.schedule.rate(t), self.intercept_schedule.rate(t)
            bias, labelled = kernels.score_then_step(
                rows, labels, self._weights, self.bias, rate_w, rate_b, z, outputs, code
            )
        if labelled < 0:
            return None
        self.bias = bias
        self.n_updates = t + (labelled if per_event else int(labelled > 0))
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

    # -- state ---------------------------------------------------------------------------------------

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
