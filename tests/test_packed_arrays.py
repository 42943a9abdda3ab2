"""A sparse snapshot's packed arrays: the SIMD base64 codec they go through gives the standard
library's text, byte for byte, reads it back exactly, and refuses what is not such an array."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from stream_neuron.neuron.sparse_state import (
    PACKED_TYPES,
    PackedText,
    bitmap_index,
    packed,
    packed_bits,
    unpacked,
)


def _arrays(dtype: str) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    if dtype == "<i8":
        return [np.zeros(0, dtype=np.int64), rng.integers(-(2**62), 2**62, size=1001), np.array([2**63 - 1])]
    return [
        np.zeros(0),
        rng.normal(size=1001) * 10.0 ** rng.integers(-300, 300, size=1001),
        np.array([5e-324, -0.0, 1.7976931348623157e308]),
        np.arange(12.0)[::3],  # not contiguous
        np.arange(4.0).astype(">f8"),  # big-endian
    ]


@pytest.mark.parametrize("name", sorted(PACKED_TYPES))
def test_packed_text_is_the_standard_library_s_and_reads_back_exactly(name: str) -> None:
    dtype = PACKED_TYPES[name]
    for array in _arrays(dtype):
        text = packed(array, dtype)
        assert type(text) is PackedText and text.raw == text.encode("ascii")  # what a snapshot copies
        assert text == base64.b64encode(np.ascontiguousarray(array).astype(dtype).tobytes()).decode("ascii")
        back = unpacked(text, dtype)
        assert back.dtype == np.dtype(dtype) and back.tobytes() == array.astype(dtype).tobytes()


def test_a_bitmap_index_round_trips_and_is_the_standard_library_s() -> None:
    mask = np.random.default_rng(3).random(1000) < 0.3
    text = packed_bits(mask)
    assert text == base64.b64encode(np.packbits(mask, bitorder="little").tobytes()).decode("ascii")
    assert bitmap_index({"bits": text}, 1000).tolist() == np.flatnonzero(mask).tolist()


@pytest.mark.parametrize(
    "text",
    [
        "not base64!",  # a character outside the alphabet
        "QUJ",  # a missing pad
        "QU JD",  # a space
        "QUJD\n",  # a line break
        "caf\u00e9",  # not ASCII
        "QUJDRA==QUJD",  # a pad in the middle
        "QUJDRA==",  # 4 bytes: not a whole float64
    ],
)
def test_what_is_not_a_packed_array_is_refused_as_such(text: str) -> None:
    with pytest.raises(ValueError, match=r"^sparse state: "):
        unpacked(text, "<f8")


@pytest.mark.parametrize("value", [None, 5, ["QUJD"], b"QUJD"])
def test_a_packed_array_must_be_text(value: object) -> None:
    with pytest.raises(ValueError, match="must be base64 text"):
        unpacked(value, "<f8")


def test_bitmap_index_refuses_bits_past_the_features_and_the_wrong_length() -> None:
    with pytest.raises(ValueError, match="past 9"):
        bitmap_index({"bits": packed_bits(np.arange(16) == 12)}, 10)
    with pytest.raises(ValueError, match="not 100 bits"):
        bitmap_index({"bits": packed_bits(np.ones(8, dtype=bool))}, 100)
    with pytest.raises(ValueError, match="not base64"):
        bitmap_index({"bits": "%%%%"}, 8)
