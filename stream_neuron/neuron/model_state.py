"""A neuron's whole state as plain JSON-able values, and back (a base of ``LinearNeuron``)."""

from __future__ import annotations

from typing import Any, ClassVar, Self

import numpy as np

from stream_neuron.neuron.optimizers import Rule, RuleState
from stream_neuron.neuron.scaler import OnlineStandardScaler
from stream_neuron.neuron.schedules import Schedule
from stream_neuron.neuron.sparse import SparseSteps


class ModelState(SparseSteps):
    """:meth:`to_dict` and :meth:`from_dict`: an exact round trip of every number of the model."""

    kind: ClassVar[str]
    sparse: bool
    scaler: OnlineStandardScaler | None

    def __init__(self, n_features: int, learning_rate: float | None = None, *, sparse: bool = False) -> None:
        raise NotImplementedError

    @classmethod
    def checked_rule(cls, rule: Rule) -> Rule:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """The whole model state as plain JSON-able values; :meth:`from_dict` restores it exactly."""
        return {
            "kind": self.kind,
            "n_features": self.n_features,
            "weights": [] if self.sparse else self._weights.tolist(),
            "bias": self.bias,
            "n_updates": self.n_updates,
            "schedule": self.schedule.to_dict(),
            "intercept_schedule": self.intercept_schedule.to_dict(),
            "scaler": None if self.scaler is None else self.scaler.to_dict(),
            **({"sparse": self.sparse_state()} if self.sparse else {}),
            **(
                {} if self.rule.plain else {"rule": self.rule.to_dict(), "rule_state": self.rule_state_dict()}
            ),
        }

    def rule_state_dict(self) -> dict[str, Any]:
        """The rule's state (a sparse model's per-feature arrays are in its ``sparse`` state)."""
        if not self.sparse:
            return self.rule_state.to_dict()
        return RuleState(max_cum_l1=self.rule_state.max_cum_l1).to_dict()

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Self:
        """A model restored from :meth:`to_dict`'s output (exact round trip)."""
        sparse = state.get("sparse") is not None
        model = cls(int(state["n_features"]), float(state["schedule"]["learning_rate"]), sparse=sparse)
        model.load_dict(state)
        return model

    def load_dict(self, state: dict[str, Any]) -> None:
        """Replace this model's state with ``state`` (as written by :meth:`to_dict`)."""
        if state.get("kind") != self.kind:
            raise ValueError(f"state is for a {state.get('kind')!r} model, not {self.kind!r}")
        if (state.get("sparse") is not None) != self.sparse:
            raise ValueError("state is for a sparse model and this one is dense, or the other way round")
        self.n_features = int(state["n_features"]) if self.sparse else self.n_features
        if self.sparse:
            weights, self.sparse_scaler, arrays = self.loaded_sparse_state(state["sparse"], self.n_features)
        else:
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
        self.rule = self.checked_rule(Rule.from_dict(state.get("rule")))
        self.rule_state = RuleState.from_dict(state.get("rule_state"), self.n_features)
        if self.sparse:
            self.rule_state = RuleState(
                arrays.get("first"), arrays.get("second"), self.rule_state.max_cum_l1, arrays.get("cum_l1")
            )
