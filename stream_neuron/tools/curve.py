"""The learning curve of a run, from its metrics records: the data first, the picture second.

:func:`learning_curve` turns metrics records into plain series (what tests check); :func:`draw` renders
them with matplotlib (an optional dependency: ``pip install 'stream-neuron[plot]'``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stream_neuron.errors import OperatorError
from stream_neuron.tools.metrics_view import Malformed


@dataclass
class LearningCurve:
    """Series against events seen; ``None`` where a window had no labelled event (or for the
    perceptron's log loss). ``rate_changes`` are the event counts where the learning rate changed."""

    events: list[int] = field(default_factory=list)
    window_log_loss: list[float | None] = field(default_factory=list)
    cumulative_log_loss: list[float | None] = field(default_factory=list)
    window_accuracy: list[float | None] = field(default_factory=list)
    cumulative_accuracy: list[float | None] = field(default_factory=list)
    learning_rate: list[float] = field(default_factory=list)
    rate_changes: list[tuple[int, float]] = field(default_factory=list)
    pending: list[int | None] = field(default_factory=list)  # delayed labels: questions waiting
    expired: list[int | None] = field(default_factory=list)  # ... and expired so far
    # Several learning rates raced: each candidate's rate and window log loss at every point, the
    # champion at every point, and (events, new champion) where it changed since the point before.
    candidate_rates: list[float] = field(default_factory=list)
    candidate_log_loss: list[list[float | None]] = field(default_factory=list)
    champions: list[int | None] = field(default_factory=list)
    champion_changes: list[tuple[int, int]] = field(default_factory=list)
    # --drift-detector: (events, detections) for each window that reported new detections
    drifts: list[tuple[int, int]] = field(default_factory=list)


MAX_MARKED_CHANGES = 10


def learning_curve(records: list[dict[str, Any] | Malformed]) -> LearningCurve:
    """The curve of the well-formed records (``metrics_view.clean_record``); the others add no point."""
    curve = LearningCurve()
    drifts_seen = 0
    for record in records:
        if isinstance(record, Malformed) or record.get("learning_rate") is None:
            continue
        if not record.get("window", {}).get("events"):
            continue  # a shutdown record after an exact window adds no point
        events = int(record["events"])
        rate = float(record["learning_rate"])
        if curve.learning_rate and rate != curve.learning_rate[-1]:
            curve.rate_changes.append((events, rate))
        curve.events.append(events)
        curve.window_log_loss.append(record["window"]["log_loss"])
        curve.cumulative_log_loss.append(record["cumulative"]["log_loss"])
        curve.window_accuracy.append(record["window"]["accuracy"])
        curve.cumulative_accuracy.append(record["cumulative"]["accuracy"])
        curve.learning_rate.append(rate)
        labels = record.get("labels") or {}
        curve.pending.append(labels.get("pending"))
        curve.expired.append(labels.get("expired"))
        _add_candidates(curve, record)
        _add_drifts(curve, record, drifts_seen)
        drift = record.get("drift")
        drifts_seen = int(drift["count"]) if isinstance(drift, dict) else drifts_seen
    return curve


def _add_drifts(curve: LearningCurve, record: dict[str, Any], seen: int) -> None:
    """A window whose record counts more detections than the one before: marked at its end (a
    detection happened in it; the log line names the labelled event)."""
    drift = record.get("drift")
    if isinstance(drift, dict) and int(drift["count"]) > seen:
        curve.drifts.append((int(record["events"]), int(drift["count"]) - seen))


def _add_candidates(curve: LearningCurve, record: dict[str, Any]) -> None:
    candidates = record.get("candidates")
    rates = [c["learning_rate"] for c in candidates] if candidates else []
    if rates and rates != curve.candidate_rates:  # the first racing record (or a restart with others)
        curve.candidate_rates = rates
        curve.candidate_log_loss = [[None] * (len(curve.events) - 1) for _ in rates]
    for j, series in enumerate(curve.candidate_log_loss):
        series.append(candidates[j]["window"]["log_loss"] if candidates else None)
    champion = record.get("champion") if candidates else None
    before = next((c for c in reversed(curve.champions) if c is not None), None)
    if champion is not None and before is not None and champion != before:
        curve.champion_changes.append((int(record["events"]), champion))
    curve.champions.append(champion)


def draw(curve: LearningCurve, path: Path, title: str = "stream-neuron learning curve") -> None:
    """Log loss (top) and accuracy (bottom) against events seen; dotted lines where the rate changed,
    red dashed ones at the windows that detected a drift."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise OperatorError("--plot needs matplotlib: pip install 'stream-neuron[plot]'") from error

    delayed = any(value is not None for value in curve.pending)
    racing = bool(curve.candidate_rates)
    rows = 2 + delayed + racing
    figure, axes = plt.subplots(rows, 1, figsize=(9, 6.5 + 2.5 * (delayed + racing)), sharex=True, dpi=110)
    loss_axis, accuracy_axis = axes[0], axes[1]
    figure.suptitle(title)
    if racing:
        _draw_candidates(curve, axes[2])
    if delayed:
        labels_axis = axes[-1]
        for counts, name, colour in ((curve.pending, "pending questions", "tab:green"),
                                     (curve.expired, "expired (cumulative)", "tab:grey")):  # fmt: skip
            counted = [(e, v) for e, v in zip(curve.events, counts, strict=True) if v is not None]
            if counted:
                xs, ys = zip(*counted, strict=True)
                labels_axis.plot(xs, ys, label=name, color=colour, linewidth=1.5)
        labels_axis.set_ylabel("questions")
        labels_axis.grid(alpha=0.3)
        labels_axis.legend(loc="best", fontsize=9)
    series = [
        (loss_axis, curve.window_log_loss, "window", "tab:orange", 1.2),
        (loss_axis, curve.cumulative_log_loss, "cumulative", "tab:red", 2.2),
        (accuracy_axis, curve.window_accuracy, "window", "tab:cyan", 1.2),
        (accuracy_axis, curve.cumulative_accuracy, "cumulative", "tab:blue", 2.2),
    ]
    for axis, values, label, colour, width in series:
        points = [(e, v) for e, v in zip(curve.events, values, strict=True) if v is not None]
        if points:
            xs, ys = zip(*points, strict=True)
            axis.plot(
                xs,
                ys,
                label=label,
                color=colour,
                linewidth=width,
                marker="o" if len(xs) < 40 else None,
                markersize=3,
            )
    loss_axis.set_ylabel("log loss (prequential)")
    accuracy_axis.set_ylabel("accuracy (prequential)")
    axes[-1].set_xlabel("events seen")
    accuracy_axis.set_ylim(0.0, 1.0)
    for events, rate in curve.rate_changes:
        for axis in (loss_axis, accuracy_axis):
            axis.axvline(events, color="grey", linestyle=":", linewidth=1)
        loss_axis.annotate(
            f"lr={rate:g}", (events, 1.0), xycoords=("data", "axes fraction"), fontsize=8, va="top", ha="left"
        )
    for events, detections in curve.drifts:
        accuracy_axis.axvline(events, color="tab:red", linestyle="--", linewidth=1)
        accuracy_axis.annotate(
            "drift" if detections == 1 else f"{detections} drifts", (events, 0.02),
            xycoords=("data", "axes fraction"), fontsize=8, color="tab:red", ha="right", rotation=90,
        )  # fmt: skip
    if curve.learning_rate:
        loss_axis.text(
            0.99,
            0.95,
            f"learning rate {curve.learning_rate[0]:g}"
            if not curve.candidate_rates
            else "published: the champion's (candidates below)",
            transform=loss_axis.transAxes,
            ha="right",
            va="top",
            fontsize=9,
        )
    for axis in (loss_axis, accuracy_axis):
        axis.grid(alpha=0.3)
        axis.legend(loc="best", fontsize=9)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _draw_candidates(curve: LearningCurve, axis: Any) -> None:
    """Every candidate's window log loss; thick where it was champion, a dashed line and its rate at
    each change of champion."""
    for j, (rate, losses) in enumerate(zip(curve.candidate_rates, curve.candidate_log_loss, strict=True)):
        points = [(e, v) for e, v in zip(curve.events, losses, strict=True) if v is not None and v > 0]
        if not points:
            continue
        xs, ys = zip(*points, strict=True)
        (line,) = axis.plot(xs, ys, label=f"lr={rate:g}", linewidth=1.0, alpha=0.8)
        held = [(e, v) for e, v, c in zip(curve.events, losses, curve.champions, strict=True)
                if c == j and v is not None and v > 0]  # fmt: skip
        if held:
            hx, hy = zip(*held, strict=True)
            axis.plot(hx, hy, linestyle="none", marker="o", markersize=4, color=line.get_color())
    for events, champion in curve.champion_changes:
        axis.axvline(events, color="black", linestyle="--", linewidth=0.8)
        axis.annotate(
            f"champion lr={curve.candidate_rates[champion]:g}", (events, 1.0),
            xycoords=("data", "axes fraction"), fontsize=7, va="top", ha="left", rotation=90,
        )  # fmt: skip
    axis.set_yscale("log")
    axis.set_ylabel("candidates: window log loss\n(dots: champion)")
    axis.grid(alpha=0.3, which="both")
    axis.legend(loc="best", fontsize=8)


def draw_rates(curves: list[tuple[float, Any]], path: Path, best: float) -> None:
    """The learning-rate lesson: the cost after each epoch of every rate on one log-scale chart. A
    rate that diverged is drawn until it leaves the chart and marked so in the legend; the best
    (lowest final cost) is named. ``curves``: (rate, :class:`neuron.descent.Descent`) pairs."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise OperatorError("--plot needs matplotlib: pip install 'stream-neuron[plot]'") from error

    figure, axis = plt.subplots(figsize=(9, 5.5), dpi=110)
    kept = [c for _, d in curves if not d.diverged for c in (d.initial, *d.costs) if math.isfinite(c)]
    top = max(kept) * 10 if kept else 10.0
    for rate, descent in curves:
        costs = list(descent.costs)
        if descent.diverged:
            # Drawn until it leaves the chart: its first cost above the top, then nothing.
            above = next((i for i, c in enumerate(costs) if not c <= top), len(costs))
            if above < len(costs) or descent.overflowed:
                costs = [*costs[:above], top * 10]
        label = f"lr={rate:g}" + ("  (diverged)" if descent.diverged else f"  cost {descent.costs[-1]:.4g}")
        if rate == best:
            label += "  <- best"
        axis.plot(range(1, len(costs) + 1), costs, label=label, linewidth=2.4 if rate == best else 1.4,
                  linestyle="--" if descent.diverged else "-")  # fmt: skip
    axis.set_yscale("log")
    axis.set_ylim(top=top)
    axis.set_xlabel("epoch")
    axis.set_ylabel("cost (mean loss over the set)")
    axis.set_title(f"batch gradient descent: the learning rate (best {best:g})")
    axis.grid(alpha=0.3, which="both")
    axis.legend(loc="best", fontsize=9)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
