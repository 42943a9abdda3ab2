"""``--features hashed``: river's ``FeatureHasher``, the hashing trick, by the same MurmurHash3 (the
``mmh3`` library) and river's seed derivation: a string ``v`` of ``f`` is the token ``"f=v"`` with
value 1, a number (a boolean too, as river has it) the token ``"f"`` with its value; the bucket is
the signed hash modulo 2^bits and the value takes the hash's sign."""

from __future__ import annotations

import binascii
from typing import Any

import mmh3
import numpy as np
import pybase64
from numpy.typing import NDArray

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
from stream_neuron.neuron.sparse_state import packed_bits

DEFAULT_HASH_BITS = 20
_PROBES = (b"", b"x0", b"id3=u51234", "caf\u00e9=cr\u00e8me".encode(), bytes(range(1, 40)))


def _bind_murmur() -> bool:
    """Give the C fast path mmh3's own MurmurHash3, called without a Python call per token.

    mmh3's extension exports its C function ``murmurhash3_x86_32``; binding it by name (dlopen of the
    already-loaded extension) saves about 70 ns a token. It is an export, not a documented API, so the
    binding is trusted only when it gives mmh3.hash's result on every probe (tokens and seeds of
    several lengths); else, or without dlopen, the fast path calls mmh3.hash per token: the same
    hashes, slower."""
    if compiled_encoder is None:
        return False
    if not compiled_encoder.bind_murmur(getattr(mmh3, "__file__", None), mmh3.hash):
        return False
    seeds = (0, 1, 2**31 + 7, 2**32 - 1)
    if any(compiled_encoder.hash_token(t, s) != mmh3.hash(t, s, signed=True) for t in _PROBES for s in seeds):
        compiled_encoder.bind_murmur(None, mmh3.hash)
        return False
    return True


NATIVE_MURMUR = _bind_murmur()
NAME_CACHE = 65_536  # numeric feature names whose bucket is kept (names repeat; ids are values)


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
        self._short = max_name_bytes // 4  # a text of at most this many characters is within the limit
        # The buckets in use (of events taken so far): the ones a snapshot may have to hold. A bit
        # each, little-endian bit order (a snapshot's bitmap as it is); the compiled paths mark them.
        self._in_use = bytearray((self.n_features + 7) // 8)
        self.budget = FeatureBudget(self.n_features if max_features is None else max_features)
        self.bound = ValueBound()  # a growing hashing refuses an event beyond it before it takes a bucket
        # river draws MurmurHash3's 32-bit seed from numpy with the user's seed: the same here.
        self._murmur_seed = int(np.random.RandomState(seed).randint(0, 2**32, dtype=np.uint32))
        self._named: dict[str, tuple[int, bool]] = {}  # numeric features' buckets, by name

    @property
    def in_use(self) -> NDArray[np.bool_]:
        """Whether each bucket is in use (a copy)."""
        bits = np.unpackbits(np.frombuffer(self._in_use, dtype=np.uint8), bitorder="little")
        return bits[: self.n_features].astype(np.bool_)

    def limit(self, budget: FeatureBudget) -> None:
        """Take ``budget`` as the bound of the buckets in use (those in use so far count in it)."""
        used = int(np.count_nonzero(self.in_use))
        budget.take(used, used * budget.cost(None))
        self.budget = budget

    def in_use_bitmap(self) -> str:
        """The buckets in use, a bit each (little-endian bit order), in base64 (:class:`PackedText`,
        which a snapshot copies whole: 175 KB for 2^20 buckets, not scanned for escapes)."""
        return packed_bits(np.frombuffer(self._in_use, dtype=np.uint8))

    def use_bitmap(self, text: Any) -> None:
        """Mark in use the buckets of :meth:`in_use_bitmap`'s text (``ValueError`` when it is not one)."""
        try:
            raw = pybase64.b64decode(text, validate=True)
        except (TypeError, ValueError, binascii.Error) as error:
            raise ValueError(f"the buckets in use are not a base64 bitmap: {error}") from None
        if len(raw) != len(self._in_use):
            raise ValueError(f"the bitmap of buckets in use is not {self.n_features} bits")
        bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), bitorder="little")
        if bits[self.n_features :].any():
            raise ValueError(f"the bitmap of buckets in use marks a bucket past {self.n_features - 1}")
        self.use(np.flatnonzero(bits).tolist())

    def use(self, buckets: list[int]) -> None:
        """Mark ``buckets`` in use (a snapshot's), as if their events had just been taken."""
        fresh = np.unique(np.asarray(buckets, dtype=np.int64))
        if fresh.size and (fresh[0] < 0 or fresh[-1] >= self.n_features):
            raise ValueError(f"buckets in use must be 0 to {self.n_features - 1}")
        fresh = fresh[~self.in_use[fresh]]
        for bucket in fresh.tolist():
            self._mark(bucket)
        self.budget.take(fresh.size, fresh.size * self.budget.cost(None))

    def encode(self, features: dict[str, Any], grow: bool = True, fast: bool = True) -> Entries:
        """The event's (buckets, summed signed values, scaled) in first-seen bucket order. Buckets
        not yet in use count against the budget (``grow``; a scorer's encoder does not count), and a
        growing hashing refuses an event with a value beyond :attr:`bound` before it marks any."""
        if fast and compiled_encoder is not None and type(features) is dict:  # the usual event, hashed in C
            cost = self.budget.cost(None)
            taken = compiled_encoder.hash_features(
                features, self.n_features, self._murmur_seed, self.max_name_bytes // 4, self._in_use,
                self.budget.room(cost) if grow else -1, self.bound.limit,
            )  # fmt: skip
            if taken is not None:
                buckets, values, scaled, fresh = taken
                if fresh:
                    self.budget.take(fresh, fresh * cost)
                return buckets, values, scaled
        hashed = self._hashed(features)
        if grow:
            self.bound.check(hashed[1])
            fresh = [b for b in hashed[0] if not self._in_use[b >> 3] >> (b & 7) & 1]
            if fresh:
                cost = len(fresh) * self.budget.cost(None)
                refusal = self.budget.refusal(len(fresh), cost, f"bucket {fresh[0]}")
                if refusal is not None:
                    raise refusal
                self.budget.take(len(fresh), cost)
                for bucket in fresh:
                    self._mark(bucket)
        return hashed

    def _mark(self, bucket: int) -> None:
        self._in_use[bucket >> 3] |= 1 << (bucket & 7)

    def encode_into(self, features: dict[str, Any], grow: bool, arrays: RawRows, end: int) -> int | None:
        """:meth:`encode` writing the event's entries from entry ``end`` on into a chunk's raw int64,
        float64 and bool ``arrays`` (``row_sink.SparseSink``'s), with no Python object per entry: the
        new end. ``None``: nothing was written, and :meth:`encode` must take the event (it names what
        is wrong, or the refusal)."""
        if compiled_encoder is None or type(features) is not dict:
            return None
        budget = self.budget
        cost = budget.bytes_per_feature  # a bucket has no name to pay for
        written = compiled_encoder.hash_into(
            features, self.n_features, self._murmur_seed, self._short, self._in_use,
            budget.room(cost) if grow else -1, self.bound.limit, *arrays, end,
        )  # fmt: skip
        if written is None:
            return None
        new_end, fresh = written
        if fresh:
            budget.take(fresh, fresh * cost)
        return new_end  # type: ignore[no-any-return]

    def encode_events_into(
        self, events: list[Any], start: int, grow: bool, arrays: RawRows, ends: list[int]
    ) -> int:
        """:meth:`encode_into` of ``events[start:]`` (decoded events, their features under
        ``"features"``) in one compiled call: each event's entries appended after the last of
        ``ends``, and its end appended to ``ends``, up to the first event :meth:`encode_into` would not
        take. That event's index (``len(events)``: none) is returned; :meth:`encode` must take it."""
        if compiled_encoder is None:
            return start
        budget = self.budget
        cost = budget.bytes_per_feature
        stop, fresh = compiled_encoder.hash_events_into(
            events, start, self.n_features, self._murmur_seed, self._short, self._in_use,
            budget.room(cost) if grow else -1, self.bound.limit, *arrays, ends,
        )  # fmt: skip
        if fresh:
            budget.take(fresh, fresh * cost)
        return stop  # type: ignore[no-any-return]

    def compiled_encoding(self, grow: bool) -> tuple[Any, ...]:
        """The hashing as ``_encode.parse_named`` reads with it (see ``_named_events.c``): the buckets it
        marks in use count against the budget's room (none marked when not ``grow``: a scorer's); pass
        the count it returns to :meth:`count_fresh`."""
        room = self.budget.room(self.budget.bytes_per_feature) if grow else -1
        bound = self.bound.limit
        return ("hashed", self.n_features, self._murmur_seed, self.max_name_bytes, self._in_use, room, bound)

    def count_fresh(self, fresh: int) -> None:
        """``fresh`` buckets the compiled reader marked in use, taken from the budget."""
        if fresh:
            self.budget.take(fresh, fresh * self.budget.bytes_per_feature)

    def _hashed(self, features: dict[str, Any]) -> Entries:
        """The reference of the hashing (and the path that names a bad feature)."""
        buckets: dict[int, float] = {}
        n, seed, limit, murmur = self.n_features, self._murmur_seed, self.max_name_bytes, mmh3.hash
        named = self._named
        short = limit // 4
        for name, value in features.items():
            kind = type(value)
            if kind is str:
                if len(value) > short and too_long(value, limit):
                    raise length_refusal(name, value, limit)
                if unencodable(value):
                    raise text_refusal(name, value)
                token, amount = f"{name}={value}", 1.0
            elif kind is float and value - value == 0.0:
                token, amount = name, value
            elif kind is float or kind is int or kind is bool:
                token, amount = name, number_of(name, value)
            else:
                raise refused_value(name, value)
            if len(name) > short and too_long(name, limit):
                raise length_refusal(name, value, limit)
            if unencodable(name):
                raise text_refusal(name, name)
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
