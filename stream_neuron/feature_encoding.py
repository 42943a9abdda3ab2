"""Features as producers send them (an object by name, any of its fields new, absent or categorical)
into :class:`~stream_neuron.neuron.sparse.SparseRows`: river's dict models, exactly.

- :class:`OpenVocabulary` (``--features open``): a name gets the next index the first time it is
  seen; a number is the feature itself (standardised with ``--standardize``), a string or a boolean
  ``v`` of feature ``f`` is the one-hot feature ``"f_v"`` with value 1 (river's ``OneHotEncoder``
  naming; river's ``SelectType(numbers.Number)`` would count a boolean as a number, this contract
  counts it as a category). The vocabulary is bounded: an event that would add past the limit is
  refused whole, and nothing of it is added.
- :class:`FeatureHashing` (``--features hashed``): river's ``FeatureHasher``, the hashing trick, by
  the same MurmurHash3 (the ``mmh3`` library) and river's seed derivation: a string ``v`` of ``f``
  is the token ``"f=v"`` with value 1, a number (a boolean too, as river has it) the token ``"f"``
  with its value; the bucket is the signed hash modulo 2^bits and the value takes the hash's sign.

Either refuses, as a :class:`~stream_neuron.decode.BadEventError` naming the feature, a value that
is not a finite number, a string or a boolean, and a name or string value over ``max_name_bytes``.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
from collections.abc import Iterable, Sequence
from itertools import chain
from types import ModuleType
from typing import Any

import mmh3
import numpy as np

from stream_neuron.decode import BadEventError, shown
from stream_neuron.feature_options import FeatureOptions
from stream_neuron.neuron.sparse_rows import SparseRows

DEFAULT_MAX_FEATURES = 100_000
DEFAULT_MAX_NAME_BYTES = 256
DEFAULT_HASH_BITS = 20
NAME_CACHE = 65_536  # numeric feature names whose bucket is kept (names repeat; ids are values)
Entries = tuple[list[int], list[float], list[bool]]


def _load() -> ModuleType | None:
    """The compiled fast path of :meth:`OpenVocabulary.encode` (``_encode.c``), when built."""
    if os.environ.get("STREAM_NEURON_KERNEL", "auto") == "numpy":
        return None
    try:
        from stream_neuron import _encode  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _encode  # type: ignore[no-any-return]


_compiled: ModuleType | None = _load()


def _too_long(text: str, max_bytes: int) -> bool:
    """More than ``max_bytes`` in UTF-8 (a character is 4 bytes at most: most texts need no encoding)."""
    return len(text) * 4 > max_bytes and len(text.encode("utf-8", "surrogatepass")) > max_bytes


def _length_refusal(name: str, value: Any, max_bytes: int) -> BadEventError:
    """The refusal of a feature whose name, or string value, is over ``max_bytes``."""
    if _too_long(name, max_bytes):
        what, text = "the feature name", name
    else:
        what, text = f"the value of feature {shown(name)}", value
    size = len(text.encode("utf-8", "surrogatepass"))
    return BadEventError(
        f"{what} {shown(text)} is {size} bytes, over the limit of {max_bytes} (--max-feature-name-bytes)",
        "FeatureNameTooLong",
    )


def _kind(value: Any) -> str:
    return "an object" if isinstance(value, dict) else "an array" if isinstance(value, list) else "null"


def _number(name: str, value: Any) -> float:
    """A feature's number, or the refusal naming it (an integer too large for a float64 included)."""
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise BadEventError(
            f"feature {shown(name)} must be a finite number that fits a float64, got {shown(value)}",
            "InvalidFeature",
        )
    return number


def _refused_value(name: str, value: Any) -> BadEventError:
    return BadEventError(
        f"feature {shown(name)} must be a number, a string or a boolean, got {_kind(value)} {shown(value)}",
        "InvalidFeature",
    )


class FeatureBudget:
    """How many features a model may take: ``--max-features``, and the bytes its snapshot has for
    them (each costs ``bytes_per_feature`` plus its name's JSON, when it has one), so a growing model
    refuses an event rather than ever writing a snapshot the model topic would refuse."""

    def __init__(self, max_features: int, max_bytes: int | None = None, bytes_per_feature: int = 0) -> None:
        self.max_features, self.max_bytes, self.bytes_per_feature = max_features, max_bytes, bytes_per_feature
        self.features, self.bytes = 0, 0

    def cost(self, name: str | None) -> int:
        return self.bytes_per_feature + (0 if name is None else len(name.encode()) + 4)

    def refusal(self, new: int, new_bytes: int, first: str) -> BadEventError | None:
        """Why ``new`` features of ``new_bytes`` do not fit (``None``: they do)."""
        if self.features + new > self.max_features:
            return BadEventError(
                f"the event adds {new} new feature(s) ({first} first) to the {self.features} known, over "
                f"the limit of {self.max_features} (--max-features)",
                "TooManyFeatures",
            )
        if self.max_bytes is not None and self.bytes + new_bytes > self.max_bytes:
            return BadEventError(
                f"the event adds {new} new feature(s) ({first} first) to the {self.features} known, and "
                f"the model's snapshot would outgrow the model topic's {self.max_bytes:,} bytes for "
                "features (raise its max.message.bytes, or lower --max-features)",
                "TooManyFeatures",
            )
        return None

    def take(self, new: int, new_bytes: int) -> None:
        self.features += new
        self.bytes += new_bytes


def _features_of(event: dict[str, Any]) -> dict[str, Any]:
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

    def limit(self, budget: FeatureBudget) -> None:
        """Take ``budget`` as the vocabulary's bound (the names known so far count in it)."""
        budget.take(len(self.names), sum(map(budget.cost, self.names)))
        self.budget = budget

    def __len__(self) -> int:
        return len(self.names)

    def encode(self, features: dict[str, Any], grow: bool = True) -> Entries:
        """The event's (indices, values, scaled) in the event's order; new names are added (when
        ``grow``) only once the whole event is known to be good. Without ``grow``, unknown names are
        left out (their weight is 0: they would add nothing)."""
        if _compiled is not None and type(features) is dict:  # the usual event: every name known
            known = _compiled.encode_known(features, self.index, self.max_name_bytes // 4)
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
                if kind is str and len(value) > short and _too_long(value, limit):
                    raise _length_refusal(name, value, limit)
                add_key(f"{name}_{value}")
                add_value(1.0)
                add_scaled(False)
            elif kind is int or kind is float:
                add_key(name)
                add_value(_number(name, value))
                add_scaled(True)
            else:
                raise _refused_value(name, value)
            if len(name) > short and _too_long(name, limit):
                raise _length_refusal(name, value, limit)
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


class FeatureHashing:
    """river's ``FeatureHasher(n_features=2**bits, seed=seed)``.

    >>> FeatureHashing(bits=20, seed=42).encode({"dog": 1, "cat": "tabby"})
    ([392817, 88994], [1.0, 1.0], [True, True])
    """

    def __init__(
        self,
        bits: int = DEFAULT_HASH_BITS,
        seed: int = 0,
        max_name_bytes: int = DEFAULT_MAX_NAME_BYTES,
        max_features: int | None = None,
    ) -> None:
        if not 1 <= bits <= 30:
            raise ValueError(f"hash bits must be between 1 and 30, got {bits}")
        self.bits, self.seed = bits, seed
        self.n_features = 1 << bits
        self.max_name_bytes = max_name_bytes
        # The buckets in use (of events taken so far): the ones a snapshot may have to hold.
        self._in_use = bytearray(self.n_features)  # indexed per bucket: far cheaper than numpy's
        self.in_use = np.frombuffer(self._in_use, dtype=np.bool_)
        self.budget = FeatureBudget(self.n_features if max_features is None else max_features)
        # river draws MurmurHash3's 32-bit seed from numpy with the user's seed: the same here.
        self._murmur_seed = int(np.random.RandomState(seed).randint(0, 2**32, dtype=np.uint32))
        self._named: dict[str, tuple[int, bool]] = {}  # numeric features' buckets, by name

    def limit(self, budget: FeatureBudget) -> None:
        """Take ``budget`` as the bound of the buckets in use (those in use so far count in it)."""
        used = int(np.count_nonzero(self.in_use))
        budget.take(used, used * budget.cost(None))
        self.budget = budget

    def in_use_bitmap(self) -> str:
        """The buckets in use, a bit each (little-endian bit order), in base64."""
        return base64.b64encode(np.packbits(self.in_use, bitorder="little").tobytes()).decode("ascii")

    def use_bitmap(self, text: Any) -> None:
        """Mark in use the buckets of :meth:`in_use_bitmap`'s text (``ValueError`` when it is not one)."""
        try:
            raw = base64.b64decode(text, validate=True)
        except (TypeError, ValueError, binascii.Error) as error:
            raise ValueError(f"the buckets in use are not a base64 bitmap: {error}") from None
        if len(raw) * 8 != self.n_features:
            raise ValueError(f"the bitmap of buckets in use is not {self.n_features} bits")
        bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), bitorder="little")
        self.use(np.flatnonzero(bits).tolist())

    def use(self, buckets: list[int]) -> None:
        """Mark ``buckets`` in use (a snapshot's), as if their events had just been taken."""
        fresh = np.unique(np.asarray(buckets, dtype=np.int64))
        if fresh.size and (fresh[0] < 0 or fresh[-1] >= self.n_features):
            raise ValueError(f"buckets in use must be 0 to {self.n_features - 1}")
        fresh = fresh[~self.in_use[fresh]]
        for bucket in fresh.tolist():
            self._in_use[bucket] = 1
        self.budget.take(fresh.size, fresh.size * self.budget.cost(None))

    def encode(self, features: dict[str, Any], grow: bool = True) -> Entries:
        """The event's (buckets, summed signed values, scaled) in first-seen bucket order. Buckets
        not yet in use count against the budget (``grow``; a scorer's encoder does not count)."""
        fast = None
        if _compiled is not None and type(features) is dict:  # the usual event, hashed in C
            fast = _compiled.hash_features(
                features, self.n_features, self._murmur_seed, mmh3.hash, self._named,
                self.max_name_bytes // 4, self._in_use,
            )  # fmt: skip
        in_use = self._in_use
        if fast is not None:
            *entries, fresh = fast
            hashed: Entries = (entries[0], entries[1], entries[2])
        else:
            hashed = self._hashed(features)
            fresh = [b for b in hashed[0] if not in_use[b]] if grow else []
        if grow and fresh:
            cost = len(fresh) * self.budget.cost(None)
            refusal = self.budget.refusal(len(fresh), cost, f"bucket {fresh[0]}")
            if refusal is not None:
                raise refusal
            self.budget.take(len(fresh), cost)
            for bucket in fresh:
                in_use[bucket] = 1
        return hashed

    def _hashed(self, features: dict[str, Any]) -> Entries:
        """The reference of the hashing (and the path that names a bad feature)."""
        buckets: dict[int, float] = {}
        n, seed, limit, murmur = self.n_features, self._murmur_seed, self.max_name_bytes, mmh3.hash
        named = self._named
        short = limit // 4
        for name, value in features.items():
            kind = type(value)
            if kind is str:
                if len(value) > short and _too_long(value, limit):
                    raise _length_refusal(name, value, limit)
                token, amount = f"{name}={value}", 1.0
            elif kind is float and value - value == 0.0:
                token, amount = name, value
            elif kind is float or kind is int or kind is bool:
                token, amount = name, _number(name, value)
            else:
                raise _refused_value(name, value)
            if len(name) > short and _too_long(name, limit):
                raise _length_refusal(name, value, limit)
            if token is name:  # a number: its name's bucket and sign, hashed once
                signed = named.get(name)
                if signed is None:
                    h = murmur(name, seed, signed=True)
                    signed = (h % n, h < 0)
                    if len(named) < NAME_CACHE:
                        named[name] = signed
                bucket, negative = signed
            else:
                h = murmur(token, seed, signed=True)
                bucket, negative = h % n, h < 0
            buckets[bucket] = buckets.get(bucket, 0.0) + (-amount if negative else amount)
        return list(buckets), list(buckets.values()), [True] * len(buckets)


Encoder = OpenVocabulary | FeatureHashing


def sparse_rows(entries: Iterable[Entries], n_rows: int) -> SparseRows:
    """The rows of ``n_rows`` encoded events, in order."""
    listed = list(entries)
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
    return encoder.encode(_features_of(event), grow)


def feature_encoder(options: FeatureOptions, names: Sequence[str] | None = None) -> Encoder | None:
    """The encoder ``--features`` asks for (``None``: fixed features), with the vocabulary ``names``
    of a snapshot when there is one."""
    if options.features == "open":
        return OpenVocabulary(names or (), options.max_features, options.max_feature_name_bytes)
    if options.features == "hashed":
        return FeatureHashing(options.hash_bits, options.hash_seed, options.max_feature_name_bytes)
    return None


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
