"""A poll of events read by one compiled pass, the Python reference path taking each event the pass
declines: dense events (``--features fixed``) into the chunk's rows, events of named features
(``open``, ``hashed``) into the chunk's sparse entries.

The compiled passes (``_events.parse_dense``, ``_encode.parse_named``) parse the plain event straight
into its row or entries, label and id, and decline everything else without judging it. A declined
event goes through the reference path, the one every event took before: ``decode_event``,
``label_of``, and the sink's ``put_event`` (``FeatureSchema.fill_row``, or the encoder's ``encode``),
which take it or name what is wrong with it. So a dead letter's reason always comes from the same
code, and a compiled pass only has to be right about what it takes (the differential tests hold it to
that, record by record, on the poison corpus and on generated events).

The dense pass reads the whole poll and the declined events are put in their places after it. The
named pass stops at each declined event and the reference takes it before the pass goes on, because
an event may change what the next ones are read with: a new name joins the open vocabulary, a fresh
bucket counts against the hashing's budget, in the stream's order.

Without the extensions (no C compiler at install, or ``STREAM_NEURON_KERNEL=numpy``),
:func:`event_reader` gives ``None`` and the processor reads every event through the reference path.
"""

from __future__ import annotations

import math
from collections.abc import Callable, MutableMapping, Sequence

import numpy as np

from stream_neuron.decode import BadEventError, decode_event, id_text
from stream_neuron.feature_values import compiled_encoder
from stream_neuron.neuron import LinearNeuron
from stream_neuron.neuron.accel import load_compiled
from stream_neuron.outputs import PredictionBudget
from stream_neuron.records import EventRef, InputRecord, OutputRecord
from stream_neuron.row_sink import DenseSink, Sink, SparseSink
from stream_neuron.schema import FeatureSchema, label_of

compiled_events = load_compiled("stream_neuron._events")
compiled_named = compiled_encoder  # parse_named is part of the encoders' extension

# The label sets the compiled passes know, by the model kind's labels.
_LABEL_SETS = {(0.0, 1.0): 0, (-1.0, 0.0, 1.0): 1}

DeadLetter = Callable[[InputRecord, str, str], OutputRecord]
Positions = MutableMapping[tuple[str, int], int]
Letters = list[OutputRecord]


class _Reader:
    """What both readers share: the settings of the checks, and the reference path for one event."""

    named = False  # events of named features (decoded for an encoder)

    def __init__(
        self,
        kind: type[LinearNeuron],
        label_set: int,
        max_bytes: int,
        learning: bool,
        fits: PredictionBudget,
        dead_letter: DeadLetter,
    ) -> None:
        self.kind, self.label_set, self.max_bytes, self.learning = kind, label_set, max_bytes, learning
        self.fits, self.dead_letter = fits, dead_letter

    def read(
        self,
        records: Sequence[InputRecord],
        sink: Sink,
        labels: np.ndarray,
        positions: Positions,
        dead_letters: Letters,
    ) -> list[EventRef]:
        """The records taken, in order, their rows and labels the first ones of ``sink`` and
        ``labels``; the others are dead letters. Every record's partition position moves past it."""
        listed = records if type(records) is list else list(records)
        refs = self._taken(listed, sink, labels, positions, dead_letters)
        if not self.learning:
            labels[: len(refs)] = math.nan  # checked as run checks it; a scorer drops it
        return refs

    def _taken(
        self, records: list[InputRecord], sink: Sink, labels: np.ndarray, positions: Positions, dead: Letters
    ) -> list[EventRef]:
        """Each reader's strategy: the refs of the records taken (labels as read, for a scorer too)."""
        raise NotImplementedError

    def _reference(self, record: InputRecord, sink: Sink, labels: np.ndarray, n: int) -> EventRef:
        """The Python path for one declined record, as row ``n``, in the order of its checks."""
        event = decode_event(record.value, self.max_bytes, named=self.named)
        labels[n] = label_of(event.get("label"), self.kind)
        event_id = id_text(event)
        self.fits(event_id, record.key)
        sink.put_event(n, event)
        return EventRef(record.topic, record.partition, record.offset, record.key, event_id, record)


class DenseReader(_Reader):
    """Reads a chunk of records into a :class:`DenseSink` and the chunk's labels."""

    _names: tuple[FeatureSchema | None, tuple[bytes, ...] | int] = (None, 0)  # the schema, as C takes it

    def _taken(
        self, records: list[InputRecord], sink: Sink, labels: np.ndarray, positions: Positions, dead: Letters
    ) -> list[EventRef]:
        """The whole poll through the compiled pass, then each declined record in its place."""
        assert isinstance(sink, DenseSink) and compiled_events is not None
        count = len(records)
        declined, taken = compiled_events.parse_dense(
            records,
            sink.buffer(count),
            labels,
            self._schema_names(sink.schema),
            self.label_set,
            self.max_bytes,
            EventRef,
            positions,
            self.fits.budget,
        )
        refs: list[EventRef | None] = taken
        dropped = False
        at = declined.find(1)
        while at >= 0:  # the reference path for each record the compiled pass declined
            record = records[at]
            try:
                refs[at] = self._reference(record, sink, labels, at)
            except BadEventError as bad:
                dead.append(self.dead_letter(record, bad.reason, bad.error_class))
                dropped = True
            at = declined.find(1, at + 1)
        if not dropped:
            return taken  # type: ignore[no-any-return]  # every record taken
        keep = np.fromiter((ref is not None for ref in refs), dtype=np.bool_, count=count)
        sink.keep(keep, count)
        kept_labels = labels[:count][keep]
        labels[: kept_labels.size] = kept_labels
        return [ref for ref in refs if ref is not None]

    def _schema_names(self, schema: FeatureSchema) -> tuple[bytes, ...] | int:
        """The schema as the compiled pass takes it: its names in UTF-8, or their number."""
        if self._names[0] is not schema:
            assert schema.n_features is not None
            names = schema.n_features if schema.names is None else tuple(n.encode() for n in schema.names)
            self._names = (schema, names)
        return self._names[1]


class NamedReader(_Reader):
    """Reads a chunk of records of named features into a :class:`SparseSink` and the chunk's labels."""

    named = True

    def _taken(
        self, records: list[InputRecord], sink: Sink, labels: np.ndarray, positions: Positions, dead: Letters
    ) -> list[EventRef]:
        """The compiled pass up to each record it declines, which the reference takes before it goes on."""
        assert isinstance(sink, SparseSink) and compiled_named is not None
        encoder, arrays, ends = sink.encoder, *sink.raw_entries()
        refs: list[EventRef] = []
        at = 0
        while at < len(records):
            taken, at, fresh = compiled_named.parse_named(
                records, at, labels[len(refs) :], self.label_set, self.max_bytes, EventRef, positions,
                self.fits.budget, arrays, ends, encoder.compiled_encoding(sink.grow),
            )  # fmt: skip
            encoder.count_fresh(fresh)
            refs += taken
            if at == len(records):
                break
            record = records[at]
            positions[(record.topic, record.partition)] = record.offset + 1
            try:
                refs.append(self._reference(record, sink, labels, len(refs)))
            except BadEventError as bad:
                dead.append(self.dead_letter(record, bad.reason, bad.error_class))
            at += 1
        return refs


EventReader = DenseReader | NamedReader


def event_reader(
    kind: type[LinearNeuron],
    max_bytes: int,
    learning: bool,
    fits: PredictionBudget,
    dead_letter: DeadLetter,
    named: bool,
) -> EventReader | None:
    """The compiled reader of dense (or ``named``) features, or ``None`` without its extension or for
    labels it does not know."""
    label_set = _LABEL_SETS.get(tuple(kind.labels))
    compiled = compiled_named if named else compiled_events
    if compiled is None or label_set is None:
        return None
    reader = NamedReader if named else DenseReader
    return reader(kind, label_set, max_bytes, learning, fits, dead_letter)
