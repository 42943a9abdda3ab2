"""The dense hot paths through the compiled kernels (``accel.py``), a base of ``LinearNeuron``: each
returns ``None`` when no kernel takes the batch, and the numpy reference runs it instead."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from stream_neuron.neuron import accel
from stream_neuron.neuron.losses import Loss
from stream_neuron.neuron.numeric import FloatArray
from stream_neuron.neuron.optimizers import Rule, RuleState
from stream_neuron.neuron.scaler import OnlineStandardScaler
from stream_neuron.neuron.schedules import Schedule


class CompiledSteps:
    loss: ClassVar[Loss]
    rule: Rule
    rule_state: RuleState
    schedule: Schedule
    intercept_schedule: Schedule
    scaler: OnlineStandardScaler | None
    n_updates: int
    bias: float
    _weights: FloatArray

    def _compiled_per_event(
        self, rows: FloatArray, y: ArrayLike, z: FloatArray, refused: NDArray[np.int8]
    ) -> FloatArray | None:
        ran = accel.per_event(
            rows, y, self._weights, self.bias, self.n_updates, self.schedule, self.intercept_schedule,
            self.loss.kernel_code, self.scaler, z, refused, self.rule, self.rule_state,
        )  # fmt: skip
        if ran is None:
            return None
        outputs, self.bias, learned, self.rule_state = ran
        self.n_updates += learned
        return outputs

    def _compiled_mini_batch(
        self, rows: FloatArray, y: ArrayLike, z: FloatArray, refused: NDArray[np.int8]
    ) -> FloatArray | None:
        if self.scaler is not None or not self.rule.plain:
            return None
        t = self.n_updates
        ran = accel.mini_batch(
            rows, y, self._weights, self.bias, self.schedule.rate(t), self.intercept_schedule.rate(t),
            self.loss.kernel_code, z, refused,
        )  # fmt: skip
        if ran is None:
            return None
        outputs, self.bias, learned = ran
        self.n_updates = t + int(learned > 0)
        return outputs
