"""Questions waiting for their answers (delayed labels, ``--label-window``).

A question is an event with an id and features and no label: it is scored at once, and its features
and its score wait here, keyed by id, until its answer (``{"id", "label"}``) arrives; the answer then
trains the model on the stored features and is counted against the stored score (river's
``progressive_val_score(..., delay=...)``). The store is bounded by a count and by a time: the oldest
question goes when a new one would exceed ``--label-window``, and any question older than
``--label-window-s`` in stream time (the newest record timestamp seen; so a replay expires the same
ones) goes too. Either way it is counted as expired and a later answer to it has no question.

Memory per pending question: its features (8 bytes each, in a numpy row) and about 430 bytes of
Python objects (the row's header, the entry, its id string, the dict slot): about 510 bytes for 10
features (``benchmarks/delayed_labels.py`` measures it), so 100,000 pending questions take ~50 MB.

Restarts: the store is not written into snapshots (it can be large). A snapshot records, per input
partition, the offsets of the questions still pending and their scores (16 bytes each, base64); the
features are read again from the input topic, which is the store's changelog (Kafka Streams rebuilds
stores from source topics the same way), and no question is scored or learned from again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pybase64
from numpy.typing import NDArray

from stream_neuron.decode import BadEventError, decode_event
from stream_neuron.feature_values import Entries
from stream_neuron.learner import Scored
from stream_neuron.metrics import MetricsTracker
from stream_neuron.neuron.linear import LinearNeuron
from stream_neuron.neuron.numeric import FloatArray
from stream_neuron.records import EventRef, InputRecord

ANSWERED_MEMORY = 100_000  # ids of answered questions kept to tell a duplicate answer from a stray one
BYTES_PER_PENDING_IN_SNAPSHOT = 24  # an offset and a score, base64


@dataclass
class Question:
    """A pending question: where it came from, when, its raw features and the score it was given
    (NaN until its chunk is scored)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    row: FloatArray | Entries  # a dense row (fixed features) or sparse entries (open or hashed)
    score: float = float("nan")
    scores: FloatArray | None = None  # racing candidates: each one's score (the published is ``score``)


@dataclass
class LabelCounts:
    """What the store saw besides matched answers (cumulative; kept in snapshots)."""

    answered: int = 0
    expired: int = 0
    unmatched_answers: int = 0
    duplicate_answers: int = 0
    duplicate_questions: int = 0

    def state(self) -> dict[str, int]:
        return dict(self.__dict__)

    @classmethod
    def restored(cls, state: dict[str, Any] | None) -> LabelCounts:
        counts = cls(**{k: int(v) for k, v in (state or {}).items() if k in cls.__dataclass_fields__})
        if min(counts.__dict__.values()) < 0:
            raise ValueError(f"label counts cannot be negative: {state}")
        return counts


@dataclass
class PendingStore:
    """Questions by id, oldest first, bounded by ``max_questions`` and ``max_age_ms``."""

    max_questions: int
    max_age_ms: int
    counts: LabelCounts = field(default_factory=LabelCounts)
    questions: OrderedDict[str, Question] = field(default_factory=OrderedDict)
    answered: OrderedDict[str, None] = field(default_factory=OrderedDict)
    stream_time_ms: int = -1
    _wanted: list[tuple[str, int, int, float]] = field(default_factory=list)  # to read back after restore
    _wanted_scores: np.ndarray | None = None  # racing candidates: each question's scores, in that order

    def __len__(self) -> int:
        return len(self.questions)

    def ask(self, event_id: str, question: Question) -> bool:
        """Keep ``question`` until its answer; ``False`` (counted) when ``event_id`` is already pending
        (the first question keeps the id)."""
        if event_id in self.questions:
            self.counts.duplicate_questions += 1
            return False
        self.questions[event_id] = question
        self.answered.pop(event_id, None)
        if len(self.questions) > self.max_questions:
            self.questions.popitem(last=False)
            self.counts.expired += 1
        return True

    def answer(self, event_id: str) -> Question | None:
        """The question ``event_id`` answers, taken out of the store; ``None`` (counted) when there is
        none: never asked, expired, or answered already."""
        question = self.questions.pop(event_id, None)
        if question is not None:
            self.counts.answered += 1
            self.answered[event_id] = None
            if len(self.answered) > ANSWERED_MEMORY:
                self.answered.popitem(last=False)
            return question
        if event_id in self.answered:
            self.counts.duplicate_answers += 1
        else:
            self.counts.unmatched_answers += 1
        return None

    def discard(self, event_id: str | None, question: Question) -> None:
        """Forget ``question`` (it could not be scored) if it is the one pending under ``event_id``."""
        if event_id is not None and self.questions.get(event_id) is question:
            del self.questions[event_id]

    def why_unmatched(self, event_id: str) -> tuple[str, str]:
        """The reason and error class of the dead letter of an answer :meth:`answer` had no question for."""
        if event_id in self.answered:
            return f"question {event_id!r} was answered already", "DuplicateAnswer"
        return (
            f"no pending question {event_id!r} (never asked, or expired from --label-window)",
            "UnmatchedAnswer",
        )

    def advance(self, timestamp_ms: int) -> None:
        """Stream time moves to ``timestamp_ms`` (if later): questions older than the window expire."""
        if timestamp_ms <= self.stream_time_ms:
            return
        self.stream_time_ms = timestamp_ms
        oldest_kept = timestamp_ms - self.max_age_ms
        questions = self.questions
        while questions:
            question = next(iter(questions.values()))
            if question.timestamp_ms >= oldest_kept:
                break
            questions.popitem(last=False)
            self.counts.expired += 1

    # -- snapshots: which questions are pending, and their scores ------------------------------------

    def state(self) -> dict[str, Any]:
        """The pending questions in store order: each one's input partition, offset and score."""
        partitions: dict[tuple[str, int], int] = {}
        which = np.empty(len(self.questions), np.int32)
        offsets = np.empty(len(self.questions), np.int64)
        scores = np.empty(len(self.questions))
        for i, question in enumerate(self.questions.values()):
            where = (question.topic, question.partition)
            which[i] = partitions.setdefault(where, len(partitions))
            offsets[i], scores[i] = question.offset, question.score
        state: dict[str, Any] = {
            "stream_time_ms": self.stream_time_ms,
            "counts": self.counts.state(),
            "partitions": [f"{topic}:{partition}" for topic, partition in partitions],
            "which": _encode(which),
            "offsets": _encode(offsets),
            "scores": _encode(scores),
        }
        every = [q.scores for q in self.questions.values()]
        if every and every[0] is not None:
            state["candidate_scores"] = _encode(np.vstack(every).reshape(-1))  # type: ignore[arg-type]
            state["candidates"] = len(every[0])
        return state

    @staticmethod
    def wanted(state: dict[str, Any] | None) -> list[tuple[str, int, int, float]]:
        """From a snapshot's state: the pending questions in store order, as (topic, partition, offset,
        score): what to read back from the input topic."""
        if not state or not state.get("partitions"):
            return []
        names = [str(name).rpartition(":") for name in state["partitions"]]
        partitions = [(topic, int(partition)) for topic, _, partition in names]
        which = _decode(state["which"], np.int32)
        offsets = _decode(state["offsets"], np.int64)
        scores = _decode(state["scores"], np.float64)
        if not (len(which) == len(offsets) == len(scores)) or (
            len(which) and (which.min() < 0 or which.max() >= len(partitions) or offsets.min() < 0)
        ):
            raise ValueError("the pending questions of the snapshot are inconsistent")
        return [
            (*partitions[w], offset, score)
            for w, offset, score in zip(which.tolist(), offsets.tolist(), scores.tolist(), strict=True)
        ]

    def restore(self, state: dict[str, Any] | None) -> None:
        """Continue from a snapshot's state: its counts and stream time; the questions come back through
        :meth:`rebuild`, from the input records :meth:`to_read` names."""
        self.questions.clear()
        self.counts = LabelCounts.restored((state or {}).get("counts"))
        self.stream_time_ms = int((state or {}).get("stream_time_ms", -1))
        self._wanted = self.wanted(state)
        self._wanted_scores = None
        if state and state.get("candidate_scores"):
            k = int(state["candidates"])
            scores = _decode(state["candidate_scores"], np.float64)
            if k < 1 or len(scores) != k * len(self._wanted):
                raise ValueError("the pending questions' candidate scores are inconsistent")
            self._wanted_scores = scores.reshape(len(self._wanted), k)

    def to_read(self) -> dict[tuple[str, int], tuple[int, int]]:
        """Per input partition, the offsets to read back (first, last + 1) for :meth:`rebuild`."""
        ranges: dict[tuple[str, int], tuple[int, int]] = {}
        for topic, partition, offset, _ in self._wanted:
            first, end = ranges.get((topic, partition), (offset, offset + 1))
            ranges[(topic, partition)] = (min(first, offset), max(end, offset + 1))
        return ranges

    def rebuild(
        self,
        records: Iterable[InputRecord],
        read: Callable[[InputRecord], tuple[str, FloatArray | Entries] | None],
    ) -> int:
        """The restored questions, in store order, from their input ``records`` (``read`` gives a
        record's id and features, or ``None``) with the scores they were given. Returns how many could
        not be rebuilt (their records are gone, or unreadable)."""
        by_place = {(r.topic, r.partition, r.offset): r for r in records}
        missing = 0
        for i, (topic, partition, offset, score) in enumerate(self._wanted):
            record = by_place.get((topic, partition, offset))
            question = None if record is None else read(record)
            if record is None or question is None:
                missing += 1
                continue
            event_id, row = question
            scores = None if self._wanted_scores is None else self._wanted_scores[i].copy()
            self.questions[event_id] = Question(
                topic, partition, offset, record.timestamp_ms, row, score, scores
            )
        self._wanted, self._wanted_scores = [], None
        return missing

    def metrics(self) -> dict[str, int]:
        return {"pending": len(self.questions), **self.counts.state()}

    def __iter__(self) -> Iterator[Question]:
        return iter(self.questions.values())


def settle_questions(refs: Sequence[EventRef], labels: FloatArray, scores: FloatArray) -> list[int]:
    """A scored chunk's questions (unlabelled rows that asked) keep their scores; the positions of its
    answers (labelled rows that answered a question)."""
    answers: list[int] = []
    for i, (ref, label, score) in enumerate(zip(refs, labels.tolist(), scores.tolist(), strict=True)):
        if ref.asked is None:
            continue
        if label != label:
            ref.asked.score = score
        else:
            answers.append(i)
    return answers


def answers_counted(
    chunk: Scored[EventRef],
    model: LinearNeuron,
    metrics: MetricsTracker,
    watch: Callable[[NDArray[np.bool_]], None],
) -> Scored[EventRef]:
    """A scored chunk of delayed labels: its questions keep their scores; its answers are counted in
    ``metrics`` with their questions' scores (the predictions made before the labels were known), their
    hits handed to ``watch`` (the drift detector's) when it watches, and leave the chunk, since they
    publish no prediction."""
    answers = settle_questions(chunk.refs, chunk.labels, chunk.scores)
    if not answers:
        return chunk
    z = np.array([chunk.refs[i].asked.score for i in answers])
    outputs, labels = model.outputs(z), chunk.labels[answers]
    loss, correct = model.prequential_terms(z, outputs, labels)
    metrics.add_terms(len(answers), loss, correct)
    if metrics.drift is not None:
        watch(model.right_answers(outputs, labels))
    keep = np.ones(len(chunk.refs), dtype=bool)
    keep[answers] = False
    return chunk.select(keep)


class RowMaker(Protocol):
    """What reads a question's features back into a row (``row_sink``'s sinks)."""

    def put_event(self, n: int, event: Any) -> None: ...

    def row(self, n: int) -> FloatArray | Entries: ...

    def start(self, n_records: int, n_features: int, capacity: int) -> None: ...


def question_of(
    record: InputRecord, sink: RowMaker, max_bytes: int, n_features: int = 0, named: bool = False
) -> tuple[str, FloatArray | Entries] | None:
    """A question read back from its input record: its id and features (``None``: unreadable)."""
    try:
        event = decode_event(record.value, max_bytes, named=named)
        sink.start(1, n_features, 1)
        sink.put_event(0, event)
    except BadEventError:
        return None
    return str(event.get("id")), sink.row(0)


def _encode(array: np.ndarray) -> str:
    return pybase64.b64encode_as_string(np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).data)


def _decode(text: str, dtype: type) -> np.ndarray:
    return np.frombuffer(pybase64.b64decode(text, validate=True), dtype=np.dtype(dtype).newbyteorder("<"))
