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
"""

from __future__ import annotations

from typing import Any, SupportsIndex

from kafka.record.default_records import DefaultRecordBatch

_MARK = "_stream_neuron_header_keys_fix"


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
