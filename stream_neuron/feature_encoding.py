"""Features as producers send them (an object by name, any of its fields new, absent or categorical)
into :class:`~stream_neuron.neuron.sparse.SparseRows`: river's dict models, exactly.

- :class:`OpenVocabulary` (``--features open``): a name gets the next index the first time it is
  seen; a number is the feature itself (standardised with ``--standardize``), a string or a boolean
  ``v`` of feature ``f`` is the one-hot feature ``"f_v"`` with value 1 (river's ``OneHotEncoder``
  naming; river's ``SelectType(numbers.Number)`` would count a boolean as a number, this contract
  counts it as a category). The vocabulary is bounded: an event that would add past the limit is
  refused whole, and nothing of it is added; so is an event with a value beyond the encoder's
  :class:`~stream_neuron.feature_values.ValueBound`, which the model would not learn.
- :class:`~stream_neuron.feature_hashing.FeatureHashing` (``--features hashed``): river's
  ``FeatureHasher`` (``feature_hashing.py``).

Either refuses, as a :class:`~stream_neuron.decode.BadEventError` naming the feature, a value that
is not a finite number, a string or a boolean, and a name or string value over ``max_name_bytes``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain
from typing import Any

import numpy as np

from stream_neuron.decode import BadEventError, shown
from stream_neuron.feature_hashing import FeatureHashing
from stream_neuron.feature_options import FeatureOptions
from stream_neuron.feature_values import (
    DEFAULT_MAX_NAME_BYTES,
    Entries,
    FeatureBudget,
    RawRows,
    ValueBound,
    compiled_encoder,
    length_refusal,
    number_of,
    refused_value,
    text_refusal,
    too_long,
    unencodable,
)
from stream_neuron.neuron.sparse_rows import SparseRows

DEFAULT_MAX_FEATURES = 100_000


def features_of(event: Mapping[str, Any]) -> dict[str, Any]:
    """An event's features by name, or the :class:`BadEventError` saying they are not an object."""
    features = event.get("features")
    if not isinstance(features, dict):
        raise BadEventError(
            '"features" must be an object by name with --features open or hashed', "InvalidFeatures"
        )
    return features


class OpenVocabulary:
    """Feature names to indices, in the order they were first seen.

    >>> v = OpenVocabulary()
    >>> v.encode({"age": 31, "country": "fr", "vip": True})
    ([0, 1, 2], [31.0, 1.0, 1.0], [True, False, False])
    >>> v.names
    ['age', 'country_fr', 'vip_True']
    >>> v.encode({"country": "de"}, grow=False)  # a scorer's view: unknown names take no part
    ([], [], [])
    """

    def __init__(
        self,
        names: Sequence[str] = (),
        max_features: int = DEFAULT_MAX_FEATURES,
        max_name_bytes: int = DEFAULT_MAX_NAME_BYTES,
    ) -> None:
        self.names: list[str] = list(names)
        self.index = {name: i for i, name in enumerate(self.names)}
        if len(self.index) != len(self.names):
            raise ValueError("the vocabulary names a feature twice")
        self.max_name_bytes = max_name_bytes
        self.budget = FeatureBudget(max_features)
        self.budget.take(len(self.names), sum(map(self.budget.cost, self.names)))
        self.bound = ValueBound()
        self._key_table: Any = None  # the names' UTF-8 to their indices, for the compiled reader

    def limit(self, budget: FeatureBudget) -> None:
        """Take ``budget`` as the vocabulary's bound (the names known so far count in it)."""
        budget.take(len(self.names), sum(map(budget.cost, self.names)))
        self.budget = budget

    def __len__(self) -> int:
        return len(self.names)

    def compiled_encoding(self, grow: bool) -> tuple[Any, ...]:
        """The vocabulary as ``_encode.parse_named`` reads with it (see ``_named_events.c``): it takes
        the events of known names only and declines the others to :meth:`encode`, which adds their
        new names when ``grow`` (else leaves them out), so ``grow`` changes nothing here."""
        if self._key_table is None:
            assert compiled_encoder is not None
            self._key_table = compiled_encoder.key_table(secrets.randbits(64))
        return ("open", self.index, self._key_table, self.max_name_bytes)

    def count_fresh(self, fresh: int) -> None:
        """Nothing: the compiled reader adds no name (a hashing's buckets are counted here)."""

    def encode_into(self, features: dict[str, Any], grow: bool, arrays: RawRows, end: int) -> int | None:
        """:meth:`encode` of an event whose every feature is known, written from entry ``end`` on
        into a chunk's raw int64, float64 and bool ``arrays`` (``row_sink.SparseSink``'s) with no
        Python object per entry: the new end. ``None``: nothing was written, and :meth:`encode` must
        take the event (a new name, or something to name)."""
        if compiled_encoder is None or type(features) is not dict:
            return None
        return compiled_encoder.encode_known_into(  # type: ignore[no-any-return]
            features, self.index, self.max_name_bytes // 4, *arrays, end
        )

    def encode(self, features: dict[str, Any], grow: bool = True, fast: bool = True) -> Entries:
        """The event's (indices, values, scaled) in the event's order; new names are added (when
        ``grow``) only once the whole event is known to be good, its values within :attr:`bound`
        too. Without ``grow``, unknown names are left out (their weight is 0: they would add
        nothing)."""
        if (
            fast and compiled_encoder is not None and type(features) is dict
        ):  # the usual event: every name known
            known = compiled_encoder.encode_known(features, self.index, self.max_name_bytes // 4)
            if known is not None:
                return known  # type: ignore[no-any-return]
        keys: list[str] = []
        values: list[float] = []
        scaled: list[bool] = []
        add_key, add_value, add_scaled = keys.append, values.append, scaled.append
        limit = self.max_name_bytes
        short = limit // 4  # a text of at most this many characters is within the limit
        for name, value in features.items():
            kind = type(value)
            if kind is float and value - value == 0.0:  # finite: the usual case first
                add_key(name)
                add_value(value)
                add_scaled(True)
            elif kind is str or kind is bool:
                if kind is str and len(value) > short and too_long(value, limit):
                    raise length_refusal(name, value, limit)
                if kind is str and unencodable(value):
                    raise text_refusal(name, value)
                add_key(f"{name}_{value}")
                add_value(1.0)
                add_scaled(False)
            elif kind is int or kind is float:
                add_key(name)
                add_value(number_of(name, value))
                add_scaled(True)
            else:
                raise refused_value(name, value)
            if len(name) > short and too_long(name, limit):
                raise length_refusal(name, value, limit)
            if unencodable(name):
                raise text_refusal(name, name)
        if len(set(keys)) != len(keys):  # {"a_b": 1, "a": "b"}: one name, two values
            twice = next(key for i, key in enumerate(keys) if key in keys[:i])
            raise BadEventError(
                f"the event gives feature {shown(twice)} twice (as a number and as a one-hot value)",
                "DuplicateFeature",
            )
        index = self.index
        indices = [index.get(key, -1) for key in keys]
        if -1 not in indices:
            return indices, values, scaled
        new = [key for key, i in zip(keys, indices, strict=True) if i < 0]
        if grow:
            self.bound.check(values)
            new_bytes = sum(map(self.budget.cost, new))
            refusal = self.budget.refusal(len(new), new_bytes, shown(new[0]))
            if refusal is not None:
                raise refusal
            self.budget.take(len(new), new_bytes)
            for key in new:
                index[key] = len(self.names)
                self.names.append(key)
            return [index[key] for key in keys], values, scaled
        known = [i >= 0 for i in indices]  # a scorer's view: unknown names take no part
        return (
            [i for i, k in zip(indices, known, strict=True) if k],
            [v for v, k in zip(values, known, strict=True) if k],
            [s for s, k in zip(scaled, known, strict=True) if k],
        )


Encoder = OpenVocabulary | FeatureHashing


def sparse_rows(entries: Iterable[Entries], n_rows: int) -> SparseRows:
    """The rows of ``n_rows`` encoded events, in order."""
    listed = list(entries)
    packed = compiled_encoder.pack_entries(listed) if compiled_encoder is not None else None
    if packed is not None and len(listed) == n_rows:
        indptr_bytes, indices, values, scaled = packed
        return SparseRows(
            np.frombuffer(indptr_bytes, dtype=np.int64),
            np.frombuffer(indices, dtype=np.int64),
            np.frombuffer(values, dtype=np.float64),
            np.frombuffer(scaled, dtype=np.bool_),
        )
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum([len(e[0]) for e in listed], out=indptr[1:])
    size = int(indptr[-1])
    flat = chain.from_iterable
    return SparseRows(
        indptr,
        np.fromiter(flat(e[0] for e in listed), dtype=np.int64, count=size),
        np.fromiter(flat(e[1] for e in listed), dtype=np.float64, count=size),
        np.fromiter(flat(e[2] for e in listed), dtype=np.bool_, count=size),
    )


def encode_features(encoder: Encoder, event: dict[str, Any], grow: bool = True) -> Entries:
    """The event's entries by ``encoder``, or the :class:`BadEventError` saying what is wrong."""
    return encoder.encode(features_of(event), grow)


def feature_encoder(
    options: FeatureOptions, names: Sequence[str] | None = None, bound: ValueBound | None = None
) -> Encoder | None:
    """The encoder ``--features`` asks for (``None``: fixed features), with the vocabulary ``names``
    of a snapshot when there is one, refusing values beyond ``bound`` before they take a name."""
    encoder: Encoder
    if options.features == "open":
        encoder = OpenVocabulary(names or (), options.max_features, options.max_feature_name_bytes)
    elif options.features == "hashed":
        encoder = FeatureHashing(options.hash_bits, options.hash_seed, options.max_feature_name_bytes)
    else:
        return None
    if bound is not None:
        encoder.bound = bound
    return encoder


def features_state(encoder: Encoder | None) -> dict[str, Any] | None:
    """A snapshot's ``features``: the mode, and the hashing's settings and buckets in use (an open
    vocabulary is the snapshot's ``feature_names``)."""
    if isinstance(encoder, OpenVocabulary):
        return {"mode": "open", "max_name_bytes": encoder.max_name_bytes}
    if isinstance(encoder, FeatureHashing):
        return {
            "mode": "hashed", "bits": encoder.bits, "seed": encoder.seed,
            "max_name_bytes": encoder.max_name_bytes, "in_use": encoder.in_use_bitmap(),
        }  # fmt: skip
    return None
