"""Prequential metrics: every labelled event's cost and hit, with the weights from before it.

The model supplies the terms (its loss and its right answers, :meth:`LinearNeuron.prequential_terms`);
this module only sums them into windows and the cumulative tally, and writes the metrics record. Every
figure in a record is finite or null: the record is always valid JSON.

``diverging`` flags a learning rate far too large, as the lecture describes it: the cost bounces
instead of falling while the weights keep growing. Read as: the window's log loss is over
:data:`DIVERGING_LOG_LOSS` (three times a coin toss) and the weight norm grew over the window, or the
norm is beyond :data:`DIVERGING_WEIGHT_NORM` whatever the model.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from stream_neuron.drift import DriftWatch

log = logging.getLogger("stream_neuron")

DIVERGING_LOG_LOSS = 2.0
DIVERGING_WEIGHT_NORM = 1e12
_LARGEST = 1.7976931348623157e308


@dataclass
class Tally:
    events: int = 0
    labelled: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    busy_s: float = 0.0  # time with input flowing (idle waits between polls left out)

    def mean_loss(self) -> float | None:
        return self.loss_sum / self.labelled if self.labelled else None

    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None


@dataclass
class MetricsTracker:
    """Window (since the last metrics record) and cumulative tallies, plus counters. ``log_loss``:
    whether the model's loss is the log loss (a probabilistic model), reported as such."""

    log_loss: bool
    cumulative: Tally = field(default_factory=Tally)
    window: Tally = field(default_factory=Tally)
    dead_letters: int = 0
    window_started: float = 0.0
    last_weight_norm: float | None = None
    warned_diverging: bool = False
    drift: DriftWatch | None = None  # --drift-detector, over the errors add_errors is given

    def diverging(self, window_loss: float | None, weight_norm: float | None, growth: float | None) -> bool:
        if weight_norm is None or weight_norm > DIVERGING_WEIGHT_NORM:
            return True
        return (
            self.log_loss
            and window_loss is not None
            and window_loss > DIVERGING_LOG_LOSS
            and growth is not None
            and growth > 1.0
        )

    def count_events(self, n: int, busy_s: float) -> None:
        """``n`` input records taken in ``busy_s`` seconds of input flowing."""
        self.cumulative.events += n
        self.window.events += n
        self.window.busy_s += busy_s

    def count_dead_letter(self) -> None:
        self.dead_letters += 1

    def add_terms(self, labelled: int, loss_sum: float, correct: int) -> None:
        """Add a scored chunk's labelled rows: their summed loss and right answers."""
        if labelled == 0:
            return
        for tally in (self.cumulative, self.window):
            tally.labelled += labelled
            # A confident mistake costs |logit|, which can be near the float64 limit: the sum saturates
            # at the largest float instead of overflowing.
            tally.loss_sum = min(tally.loss_sum + loss_sum, _LARGEST)
            tally.correct += correct

    def add_errors(self, right: Any) -> int:
        """The labelled rows just added, each prediction's hit in the order scored: the drift
        detector's input (:meth:`add_terms` counted them already). How many drifts it detected."""
        if self.drift is None or not len(right):
            return 0
        return self.drift.observe(right, self.cumulative.labelled - len(right))

    def due(self, every: int, interval_s: float, now: float) -> bool:
        return self.window.events >= every or (
            self.window.events > 0 and now - self.window_started >= interval_s
        )

    def record(
        self,
        model_version: int,
        learning_rate: float,
        weight_norm: float,
        lag: int | None,
        now: float,
        labels: dict[str, int] | None = None,
    ) -> dict[str, Any]:
        """The metrics record for the current window; starts a new window. ``labels``: delayed labels'
        counts (pending questions, answered, expired, unmatched and duplicate answers, duplicate
        questions), included when given."""
        window, cumulative = self.window, self.cumulative
        rate = window.events / window.busy_s if window.busy_s > 0 else 0.0
        norm = weight_norm if math.isfinite(weight_norm) else None
        previous, self.last_weight_norm = self.last_weight_norm, norm
        growth = norm / previous if norm is not None and previous else None
        window_loss = window.mean_loss() if self.log_loss else None
        record = {
            "model_version": model_version,
            "events": cumulative.events,
            "labelled": cumulative.labelled,
            "dead_letters": self.dead_letters,
            "window": {
                "events": window.events,
                "log_loss": window_loss,
                "accuracy": window.accuracy(),
            },
            "cumulative": {
                "log_loss": cumulative.mean_loss() if self.log_loss else None,
                "accuracy": cumulative.accuracy(),
            },
            "learning_rate": learning_rate,
            "weight_norm": norm,
            "weight_growth": growth if growth is None or math.isfinite(growth) else None,
            "diverging": self.diverging(window_loss, norm, growth),
            "events_per_second": round(rate, 1),
            "lag": lag,
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        if labels is not None:
            record["labels"] = labels
        if self.drift is not None:
            record["drift"] = self.drift.section()
        if record["diverging"] and not self.warned_diverging:
            self.warned_diverging = True
            log.warning(
                "the weights keep growing (|w| = %s, window log loss %s): the learning rate %g may be "
                "far too large (or the features need --standardize)",
                norm, window_loss, learning_rate,
            )  # fmt: skip
        self.window = Tally()
        self.window_started = now
        return record

    def state(self) -> dict[str, float | int]:
        c = self.cumulative
        state: dict[str, float | int] = {
            "events": c.events,
            "labelled": c.labelled,
            "loss_sum": c.loss_sum,
            "correct": c.correct,
            "dead_letters": self.dead_letters,
        }
        return state

    def drift_state(self) -> dict[str, Any] | None:
        """A snapshot's ``drift``: the detector's name and state (``None`` without one)."""
        return None if self.drift is None else {"name": self.drift.name, **self.drift.state()}

    def restore_drift(self, state: Any) -> None:
        """Continue from :meth:`drift_state`'s output; another detector's state (the flag changed since)
        or none leaves this one to start afresh."""
        if self.drift is not None and isinstance(state, dict) and state.get("name") == self.drift.name:
            self.drift.restore(state)

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state`'s output; ``ValueError`` for counts or sums that cannot be."""
        tally = Tally(
            int(state["events"]), int(state["labelled"]), float(state["loss_sum"]), int(state["correct"])
        )
        dead_letters = int(state["dead_letters"])
        if not (
            math.isfinite(tally.loss_sum)
            and tally.loss_sum >= 0
            and tally.events >= tally.labelled >= tally.correct >= 0
            and dead_letters >= 0
        ):
            raise ValueError(f"metrics state is inconsistent: {state}")
        self.cumulative, self.dead_letters = tally, dead_letters
