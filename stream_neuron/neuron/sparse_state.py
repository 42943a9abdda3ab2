"""What a sparse model keeps per feature, and how a snapshot holds it: river's ``StandardScaler``
on dicts (a count per feature), a rule's state gathered at some features and put back, and the
arrays packed as little-endian base64."""

from __future__ import annotations

import binascii
from typing import Any

import numpy as np
import pybase64
from numpy.typing import NDArray

from stream_neuron.neuron import accel
from stream_neuron.neuron.numeric import FloatArray
from stream_neuron.neuron.optimizers import RuleState
from stream_neuron.neuron.sparse_rows import IndexArray


def widened(array: NDArray[Any], n: int) -> NDArray[Any]:
    """``array`` followed by zeros up to ``n`` entries. The zeros are pages the system maps zeroed when
    first touched, so only the old entries are copied: a model of 2^20 hashed buckets grows from
    nothing without writing 8 MiB it may never read."""
    out = np.zeros(n, dtype=array.dtype)
    out[: array.size] = array
    return out


class SparseScaler:
    """river's ``StandardScaler`` on dicts: a count, mean and variance per feature, each moved only
    by the events the feature is present in (Welford's recurrence in river's operation order).

    >>> s = SparseScaler(2)
    >>> s.learn(np.array([0]), np.array([1.0]))
    >>> s.learn(np.array([0, 1]), np.array([3.0, 5.0]))
    >>> s.counts.tolist(), s.mean.tolist(), s.var.tolist()
    ([2, 1], [2.0, 5.0], [1.0, 0.0])
    """

    def __init__(self, n_features: int) -> None:
        self.counts = np.zeros(n_features, dtype=np.int64)
        self.mean = np.zeros(n_features)
        self.var = np.zeros(n_features)

    @property
    def n_features(self) -> int:
        return int(self.counts.shape[0])

    def grow(self, n_features: int) -> None:
        if n_features > self.n_features:
            stats = (self.counts, self.mean, self.var)
            self.counts, self.mean, self.var = (widened(a, n_features) for a in stats)

    def absorbed(self, idx: IndexArray, x: FloatArray) -> tuple[FloatArray, FloatArray]:
        """The mean and variance of features ``idx`` after absorbing values ``x`` (nothing changes)."""
        count = self.counts[idx] + 1
        old = self.mean[idx]
        mean = old + (x - old) / count
        var = self.var[idx] + ((x - old) * (x - mean) - self.var[idx]) / count
        return mean, var

    def accept(self, idx: IndexArray, mean: FloatArray, var: FloatArray) -> None:
        self.counts[idx] += 1
        self.mean[idx] = mean
        self.var[idx] = var

    def learn(self, idx: IndexArray, x: FloatArray) -> None:
        self.accept(idx, *self.absorbed(idx, x))

    def transform(
        self, idx: IndexArray, x: FloatArray, stats: tuple[FloatArray, FloatArray] | None = None
    ) -> FloatArray:
        """Values ``x`` of features ``idx`` scaled (a feature without variance yet becomes 0)."""
        mean, var = (self.mean[idx], self.var[idx]) if stats is None else stats
        std = np.sqrt(var)
        return np.where(std > 0, (x - mean) / np.where(std > 0, std, 1.0), 0.0)

    def copy(self) -> SparseScaler:
        twin = SparseScaler(0)
        twin.counts, twin.mean, twin.var = self.counts.copy(), self.mean.copy(), self.var.copy()
        return twin

    def finite(self) -> bool:
        return bool(np.isfinite(self.mean).all() and np.isfinite(self.var).all())

    def to_dict(self) -> dict[str, Any]:
        return {"counts": self.counts.tolist(), "mean": self.mean.tolist(), "var": self.var.tolist()}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> SparseScaler:
        scaler = cls(0)
        scaler.counts = np.asarray(state["counts"], dtype=np.int64).copy()
        scaler.mean = np.asarray(state["mean"], dtype=np.float64).copy()
        scaler.var = np.asarray(state["var"], dtype=np.float64).copy()
        if not (scaler.counts.ndim == 1 and scaler.mean.shape == scaler.var.shape == scaler.counts.shape):
            raise ValueError("scaler state: counts, mean and var must be lists of one length")
        if (scaler.counts < 0).any() or not scaler.finite() or (scaler.var < 0).any():
            raise ValueError("scaler state: counts, mean and var must be finite (var and counts >= 0)")
        return scaler


def gathered(state: RuleState, idx: IndexArray) -> RuleState:
    """The rule's state of features ``idx`` (the L1 total is the model's, not a feature's)."""
    first, second, cum = (None if a is None else a[idx] for a in (state.first, state.second, state.cum_l1))
    return RuleState(first, second, state.max_cum_l1, cum)


def scattered(state: RuleState, idx: IndexArray, part: RuleState, n_features: int) -> RuleState:
    """``state`` with features ``idx`` replaced by ``part`` (arrays a rule had not needed yet are made)."""

    def merged(whole: FloatArray | None, piece: FloatArray | None) -> FloatArray | None:
        if piece is None:
            return whole
        out = np.zeros(n_features) if whole is None else whole
        out[idx] = piece
        return out

    return RuleState(
        merged(state.first, part.first),
        merged(state.second, part.second),
        part.max_cum_l1,
        merged(state.cum_l1, part.cum_l1),
    )


PACKED_TYPES = {
    "counts": "<i8",
    "weights": "<f8",
    "mean": "<f8",
    "var": "<f8",
    "first": "<f8",
    "second": "<f8",
}
PACKED_TYPES["cum_l1"] = "<f8"


class PackedText(str):
    """Base64 text: nothing in it needs escaping in a JSON string, so a snapshot's writer copies
    :attr:`raw`, the same text as ASCII bytes, in whole (``snapshots.snapshot_json``) instead of
    scanning megabytes of it for escapes or encoding it again."""

    raw: bytes


class SnapshotScratch:
    """Which features a snapshot holds, and its arrays' entries at them, in buffers its snapshots reuse.
    A fresh buffer of megabytes is memory the system maps a page at a time as it is first written
    (of a 2^20-bucket model, a fault per 4 KiB page, over a thousand a snapshot), and a snapshot is
    made every few thousand events; a buffer kept and written again costs none. The cost: the
    model's memory holds them between snapshots (a bit per feature, and 8 bytes per feature held).
    The compiled kernels (``_touched.c``) take one pass where numpy takes four; numpy is the
    reference and gives the same bytes."""

    def __init__(self) -> None:
        self._bits = np.empty(0, dtype=np.uint8)
        self._entries = np.empty(0, dtype=np.uint8)

    def touched(self, arrays: list[NDArray[Any]]) -> tuple[NDArray[np.uint8], int]:
        """A bit per feature (little-endian bit order) set where any of ``arrays`` (float64 or int64,
        one length) is not 0, and how many are set: valid until the next call."""
        n = arrays[0].size
        if self._bits.size != (n + 7) // 8:
            self._bits = np.empty((n + 7) // 8, dtype=np.uint8)
        if _compiled_arrays(arrays):
            assert accel.compiled is not None
            return self._bits, int(accel.compiled.touched_bits(tuple(arrays), self._bits))
        mask = arrays[0] != 0
        for array in arrays[1:]:
            mask |= array != 0
        self._bits[:] = np.packbits(mask, bitorder="little")
        return self._bits, int(np.count_nonzero(mask))

    def gathered(self, bits: NDArray[np.uint8], array: NDArray[Any], count: int) -> NDArray[Any]:
        """``array`` at the ``count`` features ``bits`` sets, in this buffer, valid until the next call."""
        size = count * array.itemsize
        if self._entries.size < size:
            self._entries = np.empty(size, dtype=np.uint8)
        out = self._entries[:size].view(array.dtype)
        if _compiled_arrays([array]):
            assert accel.compiled is not None
            accel.compiled.gather_bits(bits, array, out)
            return out
        mask = np.unpackbits(bits, count=array.size, bitorder="little").view(np.bool_)
        return np.compress(mask, array, out=out)


def _compiled_arrays(arrays: list[NDArray[Any]]) -> bool:
    """Whether the compiled kernels take ``arrays``: native float64 or int64, C-contiguous."""
    return accel.compiled is not None and all(
        a.dtype in (np.float64, np.int64) and a.dtype.isnative and a.flags.c_contiguous for a in arrays
    )


def packed_text(raw: bytes) -> PackedText:
    """``raw``, base64 as ASCII bytes, as :class:`PackedText` (the one copy a ``str`` of it takes)."""
    text = PackedText(raw, "ascii")
    text.raw = raw
    return text


def packed(array: NDArray[Any], dtype: str) -> PackedText:
    """``array`` as ``dtype`` (little-endian) bytes in base64: a snapshot's compact numbers."""
    return packed_text(pybase64.b64encode(np.ascontiguousarray(array, dtype=dtype).data))


def unpacked(text: Any, dtype: str) -> NDArray[Any]:
    """The inverse of :func:`packed`; ``ValueError`` for text that is not such an array."""
    if not isinstance(text, str):
        raise ValueError("sparse state: an array must be base64 text")
    try:
        raw = pybase64.b64decode(text, validate=True)
    except (ValueError, binascii.Error) as error:
        raise ValueError(f"sparse state: not base64 ({error})") from None
    if len(raw) % np.dtype(dtype).itemsize:
        raise ValueError("sparse state: an array's bytes are not whole numbers")
    return np.frombuffer(raw, dtype=dtype)


def packed_bits(bits: NDArray[np.uint8]) -> PackedText:
    """Bits packed a bit per feature (little-endian bit order) in base64: a sparse state's ``{"bits"}``
    index."""
    return packed_text(pybase64.b64encode(np.ascontiguousarray(bits, dtype=np.uint8).data))


def bitmap_index(where: dict[str, Any], n_features: int) -> NDArray[np.int64]:
    """The features a ``{"bits"}`` index marks (a bit each, little-endian bit order), checked."""
    if set(where) != {"bits"} or not isinstance(where["bits"], str):
        raise ValueError('sparse state: an index object must be {"bits": base64}')
    try:
        raw = pybase64.b64decode(where["bits"], validate=True)
    except (ValueError, binascii.Error) as error:
        raise ValueError(f"sparse state: the index bits are not base64 ({error})") from None
    if len(raw) != (n_features + 7) // 8:
        raise ValueError(f"sparse state: the index bits are not {n_features} bits")
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), bitorder="little")
    if bits[n_features:].any():
        raise ValueError(f"sparse state: the index bits mark features past {n_features - 1}")
    return np.flatnonzero(bits).astype(np.int64)
