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

import math
from collections.abc import Iterable, Sequence
from typing import Any

import mmh3
import numpy as np

from stream_neuron.decode import BadEventError, shown
from stream_neuron.neuron.sparse_rows import SparseRows

DEFAULT_MAX_FEATURES = 100_000
DEFAULT_MAX_NAME_BYTES = 256
DEFAULT_HASH_BITS = 20
Entries = tuple[list[int], list[float], list[bool]]


def _checked_text(what: str, text: str, max_bytes: int) -> None:
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise BadEventError(
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
        if len(self.names) > max_features:
            raise ValueError(
                f"the vocabulary has {len(self.names)} features, over --max-features {max_features}"
            )
        self.max_features = max_features
        self.max_name_bytes = max_name_bytes

    def __len__(self) -> int:
        return len(self.names)

    def encode(self, features: dict[str, Any], grow: bool = True) -> Entries:
        """The event's (indices, values, scaled) in the event's order; new names are added (when
        ``grow``) only once the whole event is known to be good. Without ``grow``, unknown names are
        left out (their weight is 0: they would add nothing)."""
        keyed: dict[str, tuple[float, bool]] = {}
        for name, value in features.items():
            _checked_text("the feature name", name, self.max_name_bytes)
            kind = type(value)
            if kind is float or kind is int:
                key, entry = name, (_number(name, value), True)
            elif kind is str or kind is bool:
                if kind is str:
                    _checked_text(f"the value of feature {shown(name)}", value, self.max_name_bytes)
                key, entry = f"{name}_{value}", (1.0, False)
            else:
                raise _refused_value(name, value)
            if key in keyed:  # {"a_b": 1, "a": "b"}: one name, two values
                raise BadEventError(
                    f"the event gives feature {shown(key)} twice (as a number and as a one-hot value)",
                    "DuplicateFeature",
                )
            keyed[key] = entry
        index = self.index
        new = [key for key in keyed if key not in index]
        if new and grow:
            if len(self.names) + len(new) > self.max_features:
                raise BadEventError(
                    f"the event adds {len(new)} new feature(s) ({shown(new[0])} first) to the "
                    f"{len(self.names)} known, over the limit of {self.max_features} (--max-features)",
                    "TooManyFeatures",
                )
            for key in new:
                index[key] = len(self.names)
                self.names.append(key)
        indices, values, scaled = [], [], []
        for key, (value, numeric) in keyed.items():
            i = index.get(key)
            if i is not None:
                indices.append(i)
                values.append(value)
                scaled.append(numeric)
        return indices, values, scaled


class FeatureHashing:
    """river's ``FeatureHasher(n_features=2**bits, seed=seed)``.

    >>> FeatureHashing(bits=20, seed=42).encode({"dog": 1, "cat": "tabby"})
    ([392817, 88994], [1.0, 1.0], [True, True])
    """

    def __init__(
        self, bits: int = DEFAULT_HASH_BITS, seed: int = 0, max_name_bytes: int = DEFAULT_MAX_NAME_BYTES
    ) -> None:
        if not 1 <= bits <= 30:
            raise ValueError(f"hash bits must be between 1 and 30, got {bits}")
        self.bits, self.seed = bits, seed
        self.n_features = 1 << bits
        self.max_name_bytes = max_name_bytes
        # river draws MurmurHash3's 32-bit seed from numpy with the user's seed: the same here.
        self._murmur_seed = int(np.random.RandomState(seed).randint(0, 2**32, dtype=np.uint32))

    def encode(self, features: dict[str, Any], grow: bool = True) -> Entries:
        """The event's (buckets, summed signed values, scaled) in first-seen bucket order."""
        buckets: dict[int, float] = {}
        n, seed = self.n_features, self._murmur_seed
        for name, value in features.items():
            _checked_text("the feature name", name, self.max_name_bytes)
            kind = type(value)
            if kind is str:
                _checked_text(f"the value of feature {shown(name)}", value, self.max_name_bytes)
                token, amount = f"{name}={value}", 1.0
            elif kind is float or kind is int or kind is bool:
                token, amount = name, _number(name, value)
            else:
                raise _refused_value(name, value)
            h = mmh3.hash(token, seed, signed=True)
            bucket = h % n
            buckets[bucket] = buckets.get(bucket, 0.0) + (-amount if h < 0 else amount)
        return list(buckets), list(buckets.values()), [True] * len(buckets)


Encoder = OpenVocabulary | FeatureHashing


def sparse_rows(entries: Iterable[Entries], n_rows: int) -> SparseRows:
    """The rows of ``n_rows`` encoded events, in order."""
    listed = list(entries)
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum([len(e[0]) for e in listed], out=indptr[1:])
    size = int(indptr[-1])
    return SparseRows(
        indptr,
        np.fromiter((i for e in listed for i in e[0]), dtype=np.int64, count=size),
        np.fromiter((v for e in listed for v in e[1]), dtype=np.float64, count=size),
        np.fromiter((s for e in listed for s in e[2]), dtype=np.bool_, count=size),
    )


def encode_features(encoder: Encoder, event: dict[str, Any], grow: bool = True) -> Entries:
    """The event's entries by ``encoder``, or the :class:`BadEventError` saying what is wrong."""
    return encoder.encode(_features_of(event), grow)
