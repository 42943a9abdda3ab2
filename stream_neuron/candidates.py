"""Several learning rates raced on the same events: one candidate model per rate, the champion's
output published. No Kafka here.

Every candidate is a neuron with its own learner (per event, or mini-batch), fed the same validated
rows in the same order: one decode and one pass over the input, K steps per event (each a compiled
kernel call per poll batch). Each candidate keeps its own prequential metrics; the champion rule
(``champion.py``) picks which candidate's output each event is published with, from the losses of the
labelled events before it. With one rate this is today's single model, at no extra cost.

With delayed labels a candidate's loss on an answer is that of the prediction it made at question
time (each question keeps one score per candidate), as the published metrics count the published
prediction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from stream_neuron.champion import Champion
from stream_neuron.learner import MiniBatchLearner, PerEventLearner, Rows, Scored
from stream_neuron.metrics import MetricsTracker
from stream_neuron.neuron import LinearNeuron
from stream_neuron.neuron.numeric import FloatArray
from stream_neuron.neuron.refusals import ACCEPTED
from stream_neuron.records import EventRef

Learner = PerEventLearner[EventRef] | MiniBatchLearner[EventRef]


class Candidates:
    """The candidate models of one stream (one or more), their learners and metrics, and the champion."""

    def __init__(
        self,
        models: Sequence[LinearNeuron],
        make_learner: Callable[[LinearNeuron], Learner],
        champion_window: int,
        now: float,
        delayed: bool = False,
    ) -> None:
        self.models, self.delayed = list(models), delayed
        if len({type(model) for model in self.models}) > 1:
            raise ValueError("candidates differ in their step, not in their model: one kind for all")
        self.learners = [make_learner(model) for model in self.models]
        self.metrics = [MetricsTracker(model.probabilistic, window_started=now) for model in self.models]
        self.champion = Champion(len(self.models), champion_window)
        self.diverging = [False] * len(self.models)

    @property
    def racing(self) -> bool:
        return len(self.models) > 1

    def restart_race(self) -> None:
        """A new race from the next labelled events on (``Champion.restart``)."""
        if self.racing:
            self.champion.restart()

    @property
    def model(self) -> LinearNeuron:
        """The champion's model (the one model when there is one)."""
        return self.models[self.champion.champion]

    @property
    def learner(self) -> Learner:
        return self.learners[self.champion.champion]

    # -- the hot path --------------------------------------------------------------------------------

    def submit(
        self, rows: Rows, labels: FloatArray, refs: list[EventRef], now: float
    ) -> list[Scored[EventRef]]:
        if not self.racing:
            return self.learners[0].submit(rows, labels, refs, now)
        return self._combined([learner.submit(rows, labels, refs, now) for learner in self.learners])

    def grow(self, n_features: int) -> None:
        """Every candidate takes features up to ``n_features`` (an open vocabulary's new names)."""
        for model in self.models:
            model.grow(n_features)

    def due(self, now: float) -> list[Scored[EventRef]]:
        if not self.racing:
            return self.learners[0].due(now)
        return self._combined([learner.due(now) for learner in self.learners])

    def drain(self) -> list[Scored[EventRef]]:
        if not self.racing:
            return self.learners[0].drain()
        return self._combined([learner.drain() for learner in self.learners])

    def _combined(self, per_candidate: list[list[Scored[EventRef]]]) -> list[Scored[EventRef]]:
        """Each candidate's chunks (the same rows, in the same chunks: the learners took the same
        input) as the published chunks: every row from the candidate that was champion for it."""
        return [
            self._published([chunks[i] for chunks in per_candidate]) for i in range(len(per_candidate[0]))
        ]

    def _published(self, chunks: list[Scored[EventRef]]) -> Scored[EventRef]:
        first = chunks[0]
        n = len(first.refs)
        labelled = np.flatnonzero(first.labels == first.labels)
        start = self.champion.champion
        self._keep_question_scores(chunks)  # first: an answer may follow its question in this chunk
        losses = self._losses_and_metrics(chunks, labelled)
        scored_by = self.champion.observe(losses)
        if self.champion.champion == start and (scored_by == start).all():
            # the usual chunk: one champion throughout, whose rows are published as they are
            ours = chunks[start]
            published = Scored(
                first.refs, first.labels, ours.scores, ours.outputs, ours.versions, ours.refused
            )
            published.champions = np.full(n, start, dtype=np.int64)
            return published
        # An unlabelled row is scored by the champion of the moment: the one after the labelled rows
        # before it (the chunk's first champion when none came before it).
        after = np.append(scored_by[1:], self.champion.champion) if len(scored_by) else scored_by
        champions = np.full(n, start, dtype=np.int64)
        champions[labelled] = scored_by
        if len(labelled) < n:
            preceding = np.searchsorted(labelled, np.arange(n), side="left") - 1
            unlabelled = np.flatnonzero(first.labels != first.labels)
            champions[unlabelled] = np.where(
                preceding[unlabelled] >= 0, after[np.maximum(preceding[unlabelled], 0)], start
            )
        pick = champions, np.arange(n)
        published = Scored(
            first.refs,
            first.labels,
            np.vstack([c.scores for c in chunks])[pick],
            np.vstack([c.outputs for c in chunks])[pick],
            np.vstack([c.versions for c in chunks])[pick],
            np.vstack([c.refused for c in chunks])[pick],
        )
        published.champions = champions
        return published

    def _losses_and_metrics(self, chunks: list[Scored[EventRef]], labelled: np.ndarray) -> FloatArray:
        """Each candidate's loss on each labelled row (candidates x rows): on its own prediction before
        it learned the row (an answer's: made at question time); NaN where it refused the row. Each
        candidate's metrics count the rows it accepted. The candidates share their loss (they differ
        in their step), so the losses of all of them are one pass over a candidates x rows array."""
        first = chunks[0]
        labels = first.labels[labelled]
        z = np.vstack([chunk.scores for chunk in chunks])[:, labelled]  # a copy: written below
        if self.delayed:
            # The answers among the labelled rows take their questions' scores (one a candidate).
            answered = [
                (k, ref.asked.scores)
                for k, ref in enumerate(first.refs[i] for i in labelled.tolist())
                if ref.asked is not None and ref.asked.scores is not None
            ]
            if answered:
                z[:, [k for k, _ in answered]] = np.column_stack([scores for _, scores in answered])
        model = self.models[0]
        y = model.loss.canonical(labels)
        losses = np.asarray(model.loss.value(z, y), dtype=np.float64)
        right = model.predicted_labels(model.outputs(z)) == y
        accepted = np.vstack([chunk.refused for chunk in chunks])[:, labelled] == ACCEPTED
        for j, (chunk, tracker) in enumerate(zip(chunks, self.metrics, strict=True)):
            tracker.count_events(len(chunk.refs), 0.0)  # the events it scored
            if accepted[j].all():
                tracker.add_terms(len(y), float(losses[j].sum()), int(np.count_nonzero(right[j])))
            else:
                kept = accepted[j]
                tracker.add_terms(
                    int(kept.sum()), float(losses[j][kept].sum()), int(np.count_nonzero(right[j][kept]))
                )
                losses[j][~kept] = np.nan
        return losses

    def _keep_question_scores(self, chunks: list[Scored[EventRef]]) -> None:
        """Delayed labels: a question keeps every candidate's score for when its answer comes."""
        if not self.delayed:
            return
        refs, labels = chunks[0].refs, chunks[0].labels
        scores = np.vstack([chunk.scores for chunk in chunks])
        for i, ref in enumerate(refs):
            if ref.asked is not None and labels[i] != labels[i]:
                ref.asked.scores = scores[:, i].copy()

    def published_by(self, champions: np.ndarray) -> list[str]:
        """For each published row, the prediction's fields naming the candidate it came from (JSON
        members, each after a comma)."""
        texts = [
            f', "candidate": {j}, "learning_rate": {model.learning_rate!r}'
            for j, model in enumerate(self.models)
        ]
        return [texts[j] for j in champions.tolist()]

    # -- metrics ---------------------------------------------------------------------------------------

    def records(self, now: float) -> list[dict[str, Any]]:
        """Each candidate's part of a metrics record; updates which may be champion (not diverging)."""
        out = []
        for j, (model, tracker) in enumerate(zip(self.models, self.metrics, strict=True)):
            record = tracker.record(model.n_updates, model.learning_rate, model.weight_norm(), None, now)
            self.diverging[j] = bool(record["diverging"])
            out.append(
                {
                    "learning_rate": model.learning_rate,
                    "optimizer": model.rule.optimizer,
                    "window": {k: record["window"][k] for k in ("log_loss", "accuracy")},
                    "cumulative": record["cumulative"],
                    "diverging": record["diverging"],
                    "champion": j == self.champion.champion,
                }
            )
        self.champion.set_eligible(np.array([not d for d in self.diverging]))
        for j, entry in enumerate(out):
            entry["champion"] = j == self.champion.champion
        return out

    # -- snapshots ------------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "candidates": [
                {"model": model.to_dict(), "metrics": tracker.state(), "diverging": diverging}
                for model, tracker, diverging in zip(self.models, self.metrics, self.diverging, strict=True)
            ],
            "champion": self.champion.state(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        entries = state["candidates"]
        if len(entries) != len(self.models):
            raise ValueError(
                f"the snapshot races {len(entries)} candidates, --learning-rate names {len(self.models)}"
            )
        for model, tracker, entry in zip(self.models, self.metrics, entries, strict=True):
            rate = entry["model"]["schedule"]["learning_rate"]
            if rate != model.schedule.learning_rate:
                raise ValueError(f"the snapshot's candidate rates differ from --learning-rate (found {rate})")
            model.load_dict(entry["model"])
            tracker.restore(entry["metrics"])
        self.diverging = [bool(entry.get("diverging", False)) for entry in entries]
        self.champion.restore(state["champion"])
        self.champion.eligible = np.array([not d for d in self.diverging])

    def restore_pending(
        self, state: dict[str, Any] | None, ref_from: Callable[[Any], EventRef], now: float
    ) -> None:
        for learner in self.learners:  # the same rows wait in every candidate's batch
            learner.restore_pending(state, ref_from, now)
