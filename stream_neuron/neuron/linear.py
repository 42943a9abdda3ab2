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
from collections.abc import Callable
from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from stream_neuron.neuron import accel
from stream_neuron.neuron.compiled_steps import CompiledSteps
from stream_neuron.neuron.losses import Loss
from stream_neuron.neuron.model_state import ModelState
from stream_neuron.neuron.numeric import (
    FloatArray,
    as_label,
    as_labels,
    as_matrix,
    as_row,
    labels_all_valid,
    out_buffer,
    river_dot,
)
from stream_neuron.neuron.optimizers import OptimizerName, Rule, RuleState
from stream_neuron.neuron.refusals import (
    ACCEPTED,
    REFUSAL_REASONS,
    REFUSED_SCORE,
    REFUSED_STEP,
    guarded_batch_step,
    quiet_overflow,
)
from stream_neuron.neuron.scaler import OnlineStandardScaler
from stream_neuron.neuron.schedules import Schedule, ScheduleName
from stream_neuron.neuron.sparse import (
    score_then_learn_batch_sparse,
    score_then_learn_sparse,
    try_sparse_batch_step,
)
from stream_neuron.neuron.sparse_rows import SparseRows
from stream_neuron.neuron.sparse_state import SparseScaler


class LinearNeuron(ModelState, CompiledSteps):
    """One neuron: weights, bias, learning-rate schedules, an optional online scaler in front.

    A ``sparse`` model learns from :class:`SparseRows` (the features each event has, river's dicts):
    its scaler keeps a count per feature, and it can :meth:`grow` to take new features."""

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
        optimizer: OptimizerName = "sgd",
        l2: float = 0.0,
        l1: float = 0.0,
        sparse: bool = False,
    ) -> None:
        if not isinstance(n_features, int | np.integer) or n_features < (0 if sparse else 1):
            raise ValueError(f"n_features must be a positive integer, got {n_features!r}")
        self.sparse = sparse
        self.rule = self.checked_rule(Rule(optimizer, float(l2), float(l1)))
        self.rule_state = RuleState()
        rate = self.default_learning_rate if learning_rate is None else float(learning_rate)
        self.n_features = int(n_features)
        self.schedule = Schedule(schedule, rate, power)
        intercept_rate = rate if intercept_learning_rate is None else float(intercept_learning_rate)
        self.intercept_schedule = Schedule(schedule, intercept_rate, power)
        self.scaler = OnlineStandardScaler(self.n_features) if standardize and not sparse else None
        self.sparse_scaler = SparseScaler(self.n_features) if standardize and sparse else None
        self._weights = np.zeros(self.n_features)
        self.bias = 0.0
        self.n_updates = 0

    # -- what the stream asks of a kind ------------------------------------------------------------

    @classmethod
    def checked_rule(cls, rule: Rule) -> Rule:
        """``rule`` when this kind of model takes it (river's Perceptron takes plain SGD, and L2)."""
        return rule

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

    def prequential_terms(self, z: FloatArray, outputs: FloatArray, labels: FloatArray) -> tuple[float, int]:
        """The summed loss and the count of right answers over the labelled rows (NaN = unlabelled)
        of outputs scored before their labels were learned: the terms of the prequential metrics."""
        labelled = labels == labels
        if not labelled.all():  # copies only when some rows are unlabelled (a fit's set never is)
            z, outputs, labels = z[labelled], outputs[labelled], labels[labelled]
        y = self.loss.canonical(labels)
        loss = float(self.loss.value(z, y).sum())
        correct = int(np.count_nonzero(self.predicted_labels(outputs) == y))
        return loss, correct

    def right_answers(self, outputs: FloatArray, labels: FloatArray) -> NDArray[np.bool_]:
        """Per labelled row (NaN = unlabelled, left out), in order: whether its prediction was right."""
        labelled = labels == labels
        return np.asarray(self.predicted_labels(outputs[labelled]) == self.loss.canonical(labels[labelled]))

    # -- the model -----------------------------------------------------------------------------------

    @property
    def weights(self) -> FloatArray:
        """The weight vector (a read-only view: change the model through its methods)."""
        view = self._weights.view()
        view.flags.writeable = False
        return view

    def weight_norm(self) -> float:
        """The weights' Euclidean norm (guarded against overflow; what the metrics report)."""
        return self.sparse_weight_norm() if self.sparse else accel.weight_norm(self._weights)

    @property
    def learning_rate(self) -> float:
        """The rate the next update will use."""
        return self.schedule.rate(self.n_updates)

    def decision_function(self, X: ArrayLike | SparseRows) -> FloatArray:
        """The logits ``z = w . x + b`` (after scaling, when standardising) of each row."""
        if isinstance(X, SparseRows) or self.sparse:
            return self.sparse_logits(self.checked_sparse_rows(X))
        rows = as_matrix(X, self.n_features)
        return self._scaled(rows) @ self._weights + self.bias

    def predict(self, X: ArrayLike) -> Any:
        """The predicted class of each row: shape (n,), or an int for a single 1-D row."""
        labels = self.predicted_labels(self.outputs(self.decision_function(X))).astype(np.int64)
        return int(labels[0]) if np.ndim(X) == 1 else labels

    def learn_one(self, x: ArrayLike, y: float | bool) -> None:
        """One SGD step on one event: ``w -= lr * dC/dz * x``, ``b -= lr_b * dC/dz``. ``ValueError``
        (and no change) when the step would leave the model non-finite."""
        row = as_row(x, self.n_features)
        with quiet_overflow():
            _, refused = self._score_and_learn_row(row, as_label(y, self.labels))
        if refused:
            raise ValueError(REFUSAL_REASONS[refused])

    def learn_batch(self, X: ArrayLike | SparseRows, y: ArrayLike) -> None:
        """ONE step with the mean gradient of the batch (river's ``learn_many``). ``ValueError`` (and
        no change) when the step would leave the model non-finite."""
        if isinstance(X, SparseRows) or self.sparse:
            sparse = self.checked_sparse_rows(X)
            labels = as_labels(y, sparse.n_rows, self.labels, allow_missing=False)
            with quiet_overflow():
                if sparse.n_rows and not try_sparse_batch_step(self, sparse, labels):
                    raise ValueError(REFUSAL_REASONS[REFUSED_STEP])
            return
        rows = as_matrix(X, self.n_features)
        labels = as_labels(y, rows.shape[0], self.labels, allow_missing=False)
        with quiet_overflow():
            if rows.shape[0] and not self._try_batch_step(rows, labels, None):
                raise ValueError(REFUSAL_REASONS[REFUSED_STEP])

    def score_then_learn(
        self,
        X: ArrayLike | SparseRows,
        y: ArrayLike,
        scores_out: FloatArray | None = None,
        refused_out: NDArray[np.int8] | None = None,
    ) -> FloatArray:
        """The per-event hot path: for each row in order, the output with the weights from before that
        row, then one SGD step on it. ``y`` is float with NaN for an unlabelled row (scored, not
        learned). Returns the outputs; the logits go to ``scores_out`` when given.

        A row whose logit is not finite, or whose step would leave the model non-finite, changes
        nothing: its output is NaN and ``refused_out`` (when given) marks it ``REFUSED_SCORE`` or
        ``REFUSED_STEP`` (0 for the rows taken).

        ``X`` may be :class:`SparseRows` (a sparse model's only input): each row then steps only the
        features it has."""
        if isinstance(X, SparseRows) or self.sparse:
            return self._sparse(score_then_learn_sparse, X, y, scores_out, refused_out)
        rows = self._rows_of(X)
        n = rows.shape[0]
        z, refused = out_buffer(n, scores_out, np.float64), out_buffer(n, refused_out, np.int8)
        compiled = self._compiled_per_event(rows, y, z, refused)
        if compiled is not None:
            return compiled
        rows = as_matrix(rows, self.n_features)
        labels = self._checked_labels(y, n)
        with quiet_overflow():
            for t in range(n):
                z[t], refused[t] = self._score_and_learn_row(rows[t], labels[t])
        return self._outputs_of(z, refused)

    def score_then_learn_batch(
        self,
        X: ArrayLike | SparseRows,
        y: ArrayLike,
        scores_out: FloatArray | None = None,
        refused_out: NDArray[np.int8] | None = None,
    ) -> FloatArray:
        """The mini-batch hot path: outputs with the weights from before the batch, then one
        mean-gradient step over its labelled rows. Refusals as in :meth:`score_then_learn`: a row
        whose own step would make the model non-finite is left out of the batch's step."""
        if isinstance(X, SparseRows) or self.sparse:
            return self._sparse(score_then_learn_batch_sparse, X, y, scores_out, refused_out)
        rows = self._rows_of(X)
        n = rows.shape[0]
        z, refused = out_buffer(n, scores_out, np.float64), out_buffer(n, refused_out, np.int8)
        compiled = self._compiled_mini_batch(rows, y, z, refused)
        if compiled is not None:
            return compiled
        if self.scaler is not None:
            # The scaler maps zero-variance features to 0 (NaN included), so it needs the full check.
            rows = as_matrix(rows, self.n_features)
        labels = self._checked_labels(y, n)
        with quiet_overflow():
            np.matmul(self._scaled(rows), self._weights, out=z)
            z += self.bias
            # A NaN or infinite feature makes its logit non-finite, even at zero weights (0 * inf is
            # NaN), so one dot product screens the batch; as_matrix then names the culprit.
            if not math.isfinite(z @ z):
                as_matrix(rows, self.n_features)
            np.copyto(refused, np.where(np.isfinite(z), ACCEPTED, REFUSED_SCORE))
            outputs = self._outputs_of(z, refused)
            usable = (labels == labels) & (refused == ACCEPTED)
            if usable.any():
                # the whole batch takes the logits just computed (no scaler: its pre-step logits)
                guarded_batch_step(
                    lambda rows_in, commit: (
                        self._try_batch_step(rows, labels, z, commit)
                        if rows_in.all()
                        else self._try_batch_step(rows[rows_in], labels[rows_in], None, commit)
                    ),
                    usable,
                    refused,
                )
        return outputs

    def _sparse(
        self,
        step: Callable[[Self, SparseRows, FloatArray, FloatArray, NDArray[np.int8]], None],
        X: ArrayLike | SparseRows,
        y: ArrayLike,
        scores_out: FloatArray | None,
        refused_out: NDArray[np.int8] | None,
    ) -> FloatArray:
        # The compiled per-event kernel checks its rows as it takes them (and names nothing: the
        # reference path checks them when it refuses), so they are checked here for the others only.
        if isinstance(X, SparseRows) and step is score_then_learn_sparse:
            rows = X
        else:
            rows = self.checked_sparse_rows(X)
        n = rows.n_rows
        z, refused = out_buffer(n, scores_out, np.float64), out_buffer(n, refused_out, np.int8)
        labels = self._checked_labels(y, n)
        with quiet_overflow():
            step(self, rows, labels, z, refused)
        return self._outputs_of(z, refused)

    def _rows_of(self, X: ArrayLike) -> FloatArray:
        """``X`` as a C-contiguous float64 matrix of this model's width (its values not yet checked)."""
        rows = np.ascontiguousarray(X, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != self.n_features:
            rows = as_matrix(rows, self.n_features)
        return rows

    def _outputs_of(self, z: FloatArray, refused: NDArray[np.int8]) -> FloatArray:
        outputs = self.outputs(z)
        if refused.any():
            outputs[refused != ACCEPTED] = np.nan
        return outputs

    # -- the reference update rules (numpy); _kernels.c computes the same ---------------------------

    def _score_and_learn_row(self, x: FloatArray, label: float) -> tuple[float, int]:
        """The logit of ``x`` with the current weights; then, when ``label`` is not NaN, one SGD step.
        Returns the logit and ``ACCEPTED``, or the refusal that left the model as it was.

        ``label`` is an accepted label (it is made canonical here). With a scaler, ``x`` is scored with
        the statistics from before it and learned with the statistics after it (river's order)."""
        scaler = self.scaler
        scored = x if scaler is None else scaler.transform(x)
        z = river_dot(self._weights, scored) + self.bias
        if not math.isfinite(z):
            return z, REFUSED_SCORE
        if label != label:
            return z, ACCEPTED
        stats = None
        if scaler is None:
            learned, z_learned = scored, z
        else:
            stats = scaler.absorbed(x)
            learned = scaler.transform(x, stats)
            z_learned = river_dot(self._weights, learned) + self.bias
        t = self.n_updates
        g = self.loss.gradient_one(z_learned, self.loss.canonical_one(float(label)))
        if self.rule.plain:  # the usual rule inline: this runs once per event without the kernel
            weights, rule_state = self._weights - self.schedule.rate(t) * (g * learned), self.rule_state
        else:
            weights, rule_state = self._stepped(g * learned, t)
        bias = self.bias - self.intercept_schedule.rate(t) * g
        if not (
            math.isfinite(bias) and np.isfinite(weights).all() and (self.rule.plain or rule_state.finite())
        ):
            return z, REFUSED_STEP
        if stats is not None:
            if not (np.isfinite(stats[0]).all() and np.isfinite(stats[1]).all()):
                return z, REFUSED_STEP
            scaler.accept(*stats)  # type: ignore[union-attr]
        self._weights, self.bias, self.n_updates, self.rule_state = weights, bias, t + 1, rule_state
        return z, ACCEPTED

    def _stepped(self, feature_gradient: FloatArray, t: int) -> tuple[FloatArray, RuleState]:
        """The weights (and the rule's state) one step on: plain SGD inline, else the rule's."""
        rate = self.schedule.rate(t)
        if self.rule.plain:
            return self._weights - rate * feature_gradient, self.rule_state
        return self.rule.step(
            self._weights, feature_gradient, rate, self.schedule.rate(t + 1), t, self.rule_state
        )

    def _try_batch_step(
        self, rows: FloatArray, labels: FloatArray, z: FloatArray | None, commit: bool = True
    ) -> bool:
        """One step with the mean gradient of validated ``rows`` (river's ``learn_many``), taken (when
        ``commit``) only if the model stays finite. ``z``: the rows' logits when the caller already has
        them (no scaler: they are the pre-step logits)."""
        scaler = None if self.scaler is None else self.scaler.copy()
        if scaler is not None:
            scaler.learn_many(rows)
            if not scaler.finite():
                return False
            rows = scaler.transform(rows)
            z = None
        if z is None:
            z = rows @ self._weights + self.bias
        n, t = rows.shape[0], self.n_updates
        g = np.asarray(self.loss.gradient(z, self.loss.canonical(labels)))
        weights, rule_state = self._stepped(g @ rows / n, t)
        bias = self.bias - self.intercept_schedule.rate(t) * (float(g.sum()) / n)
        if not (math.isfinite(bias) and np.isfinite(weights).all() and rule_state.finite()):
            return False
        if commit:
            self._weights, self.bias, self.n_updates, self.rule_state = weights, bias, t + 1, rule_state
            if scaler is not None:
                self.scaler = scaler
        return True

    def _scaled(self, rows: FloatArray) -> FloatArray:
        return rows if self.scaler is None else self.scaler.transform(rows)

    def _checked_labels(self, y: ArrayLike, n_rows: int) -> FloatArray:
        """Labels of a hot-path batch: one cheap test for the usual fully labelled batch, the precise
        check (NaN allowed, a clear error otherwise) only when that test fails."""
        labels = np.asarray(y, dtype=np.float64).reshape(-1)
        if labels.shape[0] == n_rows and labels_all_valid(labels, self.labels):
            return labels
        return as_labels(labels, n_rows, self.labels, allow_missing=True)
