"""How a gradient becomes a weight update: river's optimizers and penalties, exactly.

The update of one step, given the loss gradient ``g`` of the step's logit(s) and the features ``x``
(per event) or the batch's mean feature gradient (mini-batch), follows river's ``GLM._fit``:

- the feature gradient, plus ``l2 * w`` with an L2 penalty (the intercept is never penalised);
- the optimizer's step on the weights at the step's count ``t`` (``optim.SGD``: ``w -= lr * g``;
  ``optim.AdaGrad``: ``G += g^2``, ``w -= lr / sqrt(G + eps) * g``; ``optim.Adam``: bias-corrected
  moments, ``w -= lr_t * m / (sqrt(v) + eps)``);
- with an L1 penalty, river's cumulative truncation after the step (Tsuruoka et al.): the total
  penalty a weight could have had so far, ``sum(l1 * lr)``, less what it had, pulls it to 0 and never
  past it.

The intercept is stepped by plain SGD at its own rate whatever the optimizer (river's
``intercept_lr``). A rule never changes anything itself: :meth:`Rule.step` proposes the new weights
and state, and the model commits them only when they are finite (the guard of the hot paths).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from stream_neuron.neuron.numeric import FloatArray

OptimizerName = Literal["sgd", "adagrad", "adam"]
OPTIMIZERS: tuple[OptimizerName, ...] = ("sgd", "adagrad", "adam")

ADAGRAD_EPS = 1e-8
ADAM_BETA_1, ADAM_BETA_2, ADAM_EPS = 0.9, 0.999, 1e-8


@dataclass
class RuleState:
    """What a rule carries from step to step: the optimizer's moments (AdaGrad's ``G``; Adam's ``m``
    and ``v``) and the L1 penalty's totals (``max_cum``, and ``cum`` per weight)."""

    first: FloatArray | None = None  # AdaGrad's G, Adam's m
    second: FloatArray | None = None  # Adam's v
    max_cum_l1: float = 0.0
    cum_l1: FloatArray | None = None

    def copy(self) -> RuleState:
        copied = [None if a is None else a.copy() for a in (self.first, self.second, self.cum_l1)]
        return RuleState(copied[0], copied[1], self.max_cum_l1, copied[2])

    def finite(self) -> bool:
        arrays = [a for a in (self.first, self.second, self.cum_l1) if a is not None]
        return math.isfinite(self.max_cum_l1) and all(bool(np.isfinite(a).all()) for a in arrays)

    def to_dict(self) -> dict[str, Any]:
        def listed(a: FloatArray | None) -> list[float] | None:
            return None if a is None else a.tolist()

        return {
            "first": listed(self.first),
            "second": listed(self.second),
            "max_cum_l1": self.max_cum_l1,
            "cum_l1": listed(self.cum_l1),
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any] | None, n_features: int) -> RuleState:
        if not state:
            return cls()

        def array(value: Any) -> FloatArray | None:
            if value is None:
                return None
            a = np.asarray(value, dtype=np.float64)
            if a.shape != (n_features,) or not np.isfinite(a).all():
                raise ValueError(f"optimizer state: a vector of {n_features} finite numbers expected")
            return a.copy()

        restored = cls(
            array(state.get("first")),
            array(state.get("second")),
            float(state.get("max_cum_l1", 0.0)),
            array(state.get("cum_l1")),
        )
        if not restored.finite() or restored.max_cum_l1 < 0:
            raise ValueError("optimizer state: the L1 total must be finite and >= 0")
        return restored


@dataclass(frozen=True)
class Rule:
    """An optimizer with its penalty. ``l1`` and ``l2`` together are refused, as river refuses them."""

    optimizer: OptimizerName = "sgd"
    l2: float = 0.0
    l1: float = 0.0

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}: use {', '.join(OPTIMIZERS)}")
        for name, value in (("l1", self.l1), ("l2", self.l2)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.l1 and self.l2:
            raise ValueError("l1 and l2 together are not supported (nor by river): choose one penalty")

    @property
    def plain(self) -> bool:
        """Plain SGD without a penalty: the one rule the mini-batch kernel steps (the per-event kernel
        steps every rule)."""
        return self.optimizer == "sgd" and not self.l1 and not self.l2

    def step(
        self,
        weights: FloatArray,
        feature_gradient: FloatArray,
        rate: float,
        next_rate: float,
        t: int,
        state: RuleState,
    ) -> tuple[FloatArray, RuleState]:
        """The weights and state after one step at count ``t`` (``rate``: the schedule's rate at
        ``t``; ``next_rate`` at ``t + 1``, which river's L1 total adds), from ``feature_gradient`` (the
        loss gradient times the features, or the batch's mean of it). Neither input is changed."""
        g = feature_gradient + weights * self.l2 if self.l2 else feature_gradient
        new = state.copy()
        if self.optimizer == "sgd":
            proposed = weights - rate * g
        elif self.optimizer == "adagrad":
            g2 = (new.first if new.first is not None else np.zeros_like(weights)) + g**2
            new.first = g2
            proposed = weights - rate / (g2 + ADAGRAD_EPS) ** 0.5 * g
        else:
            m = new.first if new.first is not None else np.zeros_like(weights)
            v = new.second if new.second is not None else np.zeros_like(weights)
            lr = rate * (1 - ADAM_BETA_2 ** (t + 1)) ** 0.5
            lr /= 1 - ADAM_BETA_1 ** (t + 1)
            new.first = ADAM_BETA_1 * m + (1 - ADAM_BETA_1) * g
            new.second = ADAM_BETA_2 * v + (1 - ADAM_BETA_2) * g**2
            proposed = weights - lr * new.first / (new.second**0.5 + ADAM_EPS)
        if self.l1:  # after the step, at the optimizer's rate then (river reads it after the step)
            proposed = self._truncate(proposed, next_rate, new)
        return proposed, new

    def _truncate(self, weights: FloatArray, rate: float, state: RuleState) -> FloatArray:
        """river's cumulative L1 penalty (``GLM._update_weights``), after the step."""
        state.max_cum_l1 = state.max_cum_l1 + self.l1 * rate
        cum = state.cum_l1 if state.cum_l1 is not None else np.zeros_like(weights)
        before = weights
        positive = np.maximum(0.0, before - (state.max_cum_l1 + cum))
        negative = np.minimum(0.0, before + (state.max_cum_l1 - cum))
        after = np.where(before > 0, positive, np.where(before < 0, negative, before))
        state.cum_l1 = cum + (after - before)
        return after

    def to_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer, "l2": self.l2, "l1": self.l1}

    @classmethod
    def from_dict(cls, state: dict[str, Any] | None) -> Rule:
        if not state:
            return cls()
        optimizer: Any = str(state.get("optimizer", "sgd"))  # checked by the rule itself
        return cls(optimizer, float(state.get("l2", 0.0)), float(state.get("l1", 0.0)))
