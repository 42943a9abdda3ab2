"""A poll of dense events (``--features fixed``) read into the chunk's rows by one compiled pass, the
Python path taking each event the pass declines.

The compiled pass (``_events.parse_dense``) parses the plain event straight into its row, label and
id, and declines everything else without judging it. A declined event goes through the reference
path, the one every event took before: ``decode_event``, ``label_of``, ``FeatureSchema.fill_row``,
which take it or name what is wrong with it. So a dead letter's reason always comes from the same
code, and the compiled pass only has to be right about what it takes (the differential test holds it
to that, record by record, on the poison corpus and on generated events).

Without the extension (no C compiler at install, or ``STREAM_NEURON_KERNEL=numpy``),
:func:`dense_reader` gives ``None`` and the processor reads every event through the reference path.
"""

from __future__ import annotations

import math
from collections.abc import Callable, MutableMapping, Sequence

import numpy as np

from stream_neuron.decode import BadEventError, decode_event, id_text
from stream_neuron.neuron import LinearNeuron
from stream_neuron.neuron.accel import load_compiled
from stream_neuron.outputs import PredictionBudget
from stream_neuron.records import EventRef, InputRecord, OutputRecord
from stream_neuron.row_sink import DenseSink
from stream_neuron.schema import FeatureSchema, label_of

compiled_events = load_compiled("stream_neuron._events")

# The label sets the compiled pass knows, by the model kind's labels.
_LABEL_SETS = {(0.0, 1.0): 0, (-1.0, 0.0, 1.0): 1}

DeadLetter = Callable[[InputRecord, str, str], OutputRecord]


class DenseReader:
    """Reads a chunk of records into a :class:`DenseSink` and the chunk's labels."""

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
        self._names: tuple[FeatureSchema | None, tuple[bytes, ...] | int] = (None, 0)

    def read(
        self,
        records: Sequence[InputRecord],
        sink: DenseSink,
        labels: np.ndarray,
        positions: MutableMapping[tuple[str, int], int],
        dead_letters: list[OutputRecord],
    ) -> list[EventRef]:
        """The records taken, in order, their rows and labels the first ones of ``sink`` and
        ``labels``; the others are dead letters. Every record's partition position moves past it."""
        count = len(records)
        assert compiled_events is not None
        declined, taken = compiled_events.parse_dense(
            records if type(records) is list else list(records),
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
                dead_letters.append(self.dead_letter(record, bad.reason, bad.error_class))
                dropped = True
            at = declined.find(1, at + 1)
        if dropped:
            keep = np.fromiter((ref is not None for ref in refs), dtype=np.bool_, count=count)
            sink.keep(keep, count)
            kept_labels = labels[:count][keep]
            labels[: kept_labels.size] = kept_labels
            refs = [ref for ref in refs if ref is not None]
        if not self.learning:
            labels[: len(refs)] = math.nan  # checked as run checks it; a scorer drops it
        return refs  # type: ignore[return-value]  # no None left

    def _reference(self, record: InputRecord, sink: DenseSink, labels: np.ndarray, i: int) -> EventRef:
        """The Python path for one declined record, in the order of its checks."""
        event = decode_event(record.value, self.max_bytes)
        labels[i] = label_of(event.get("label"), self.kind)
        event_id = id_text(event)
        self.fits(event_id, record.key)
        sink.put_event(i, event)
        return EventRef(record.topic, record.partition, record.offset, record.key, event_id, record)

    def _schema_names(self, schema: FeatureSchema) -> tuple[bytes, ...] | int:
        """The schema as the compiled pass takes it: its names in UTF-8, or their number."""
        if self._names[0] is not schema:
            assert schema.n_features is not None
            names = schema.n_features if schema.names is None else tuple(n.encode() for n in schema.names)
            self._names = (schema, names)
        return self._names[1]


def dense_reader(
    kind: type[LinearNeuron], max_bytes: int, learning: bool, fits: PredictionBudget, dead_letter: DeadLetter
) -> DenseReader | None:
    """The compiled reader, or ``None`` without the extension or for labels it does not know."""
    label_set = _LABEL_SETS.get(tuple(kind.labels))
    if compiled_events is None or label_set is None:
        return None
    return DenseReader(kind, label_set, max_bytes, learning, fits, dead_letter)
