"""Learning-rate schedules, counted per update (an update is one SGD step or one mini-batch step).

The rate for the update numbered ``t`` (0 for the first) matches river's schedulers, which the
optimizer asks with its iteration count before stepping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from stream_neuron.neuron.numeric import FloatArray

ScheduleName = Literal["constant", "invscaling"]


@dataclass(frozen=True)
class Schedule:
    """``constant``: ``lr`` for every update. ``invscaling``: ``lr / (t + 1) ** power``.

    >>> Schedule("invscaling", 0.5, power=1.0).rate(3)
    0.125
    >>> Schedule("constant", 0.1).rates(start=10, count=3).tolist()
    [0.1, 0.1, 0.1]
    """

    name: ScheduleName
    learning_rate: float
    power: float = 0.5

    def __post_init__(self) -> None:
        if self.name not in ("constant", "invscaling"):
            raise ValueError(f"unknown schedule {self.name!r}: use 'constant' or 'invscaling'")
        if not (np.isfinite(self.learning_rate) and self.learning_rate >= 0):
            raise ValueError(f"learning rate must be finite and >= 0, got {self.learning_rate}")
        if not (np.isfinite(self.power) and self.power >= 0):
            raise ValueError(f"schedule power must be finite and >= 0, got {self.power}")

    def rate(self, t: int) -> float:
        """The rate of update number ``t`` (0-based)."""
        if self.name == "constant":
            return self.learning_rate
        return float(self.learning_rate / (t + 1.0) ** self.power)

    def rates(self, start: int, count: int) -> FloatArray:
        """Rates of updates ``start .. start+count-1`` as one array (one allocation per batch)."""
        if self.name == "constant":
            return np.full(count, self.learning_rate)
        t = np.arange(start + 1.0, start + count + 1.0)
        return self.learning_rate / t**self.power

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "learning_rate": self.learning_rate, "power": self.power}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Schedule:
        return cls(state["name"], float(state["learning_rate"]), float(state["power"]))
