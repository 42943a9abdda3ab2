"""A record whose header key is not UTF-8 must not stop the consumer.

Upstream behaviour it corrects: kafka-python 3.0 (up to at least 3.0.12),
``kafka/record/default_records.py``, ``DefaultRecordBatch._read_msg``, decodes every header key with
``bytes.decode("utf-8")``. The protocol calls header keys strings, but the broker does not check them,
so any producer can send a key that is not UTF-8; kafka-python then raises ``CorruptRecordError`` for
the whole batch, at every poll, and a consumer cannot get past it (every restart stops there again).
The Java client decodes such keys leniently (invalid bytes become U+FFFD).

:func:`install` wraps ``_read_msg``: when it fails on a header key, the record is read again from the
same position with the batch's buffer wrapped so that header keys decode with ``backslashreplace``
(the key ``b"\\xff"`` becomes the text ``"\\xff"``). The record, its value and its other headers are
untouched; only such a key is rewritten, which a dead letter of the record shows. Other corrupt data
still raises. Records without such keys take the original path at no cost.

It is installed by every consumer this backend makes (``config.new_consumer``), after checking that
``_read_msg`` takes the parameters it was written against and that the batch keeps its buffer and
position where the fix expects them.
"""

from __future__ import annotations

import inspect
from typing import Any, SupportsIndex

from kafka.record.default_records import DefaultRecordBatch

from stream_neuron.kafka_io.errors import StartupError
from stream_neuron.kafka_io.kafka_python.patching import check_patchable

_MARK = "_stream_neuron_header_keys_fix"
_EXPECTED_PARAMETERS = ["self", "decode_varint"]


class _LenientBytes(bytes):
    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return bytes(self).decode(encoding, "backslashreplace")


class _LenientBuffer(bytearray):
    """The batch's bytes; a slice is bytes that decode leniently (only header keys are decoded)."""

    def __getitem__(self, index: SupportsIndex | slice) -> Any:
        item = super().__getitem__(index)
        return _LenientBytes(item) if isinstance(index, slice) else item


def install() -> None:
    """Idempotent; wraps ``DefaultRecordBatch._read_msg`` (see the module docstring)."""
    original = DefaultRecordBatch._read_msg
    if getattr(original, _MARK, False):
        return
    check_patchable(original, _EXPECTED_PARAMETERS, "the header-key fix")
    if "self._pos" not in _source(original) or "self._buffer" not in _source(original):
        raise StartupError(
            "the header-key fix: kafka-python's DefaultRecordBatch no longer reads from _buffer/_pos"
        )

    def _read_msg(self: DefaultRecordBatch, *args: Any, **kwargs: Any) -> Any:
        start = self._pos
        try:
            return original(self, *args, **kwargs)
        except UnicodeDecodeError:
            self._pos = start
            if not isinstance(self._buffer, _LenientBuffer):
                self._buffer = _LenientBuffer(self._buffer)
            return original(self, *args, **kwargs)

    setattr(_read_msg, _MARK, True)
    DefaultRecordBatch._read_msg = _read_msg


def _source(function: Any) -> str:
    try:
        return inspect.getsource(function)
    except (OSError, TypeError):  # no source shipped: trust the signature check
        return "self._pos self._buffer"
