"""A fenced transactional producer must stop, not take its transactional id back.

kafka-python 3.0 (up to at least 3.0.12) answers a produce error ``INVALID_PRODUCER_EPOCH`` by bumping
the producer epoch itself (KIP-360), also for transactional producers. When another instance has
taken the transactional id over, the broker refuses that bump, and kafka-python then falls back to a
fresh ``InitProducerId`` without an epoch: the old instance fences the new one, so the zombie wins.
The Java client, which defines the protocol's behaviour, treats ``INVALID_PRODUCER_EPOCH`` on a
transactional produce as fencing (fatal) and only ever bumps the epoch when the application aborts.

:func:`install` restores that for transactional producers only (idempotent producers keep
kafka-python's recovery): ``InvalidProducerEpochError`` and ``ProducerFencedError`` are fatal, and the
other epoch-bump errors (``OutOfOrderSequenceNumberError``, ``UnknownProducerIdError``) abort the
transaction, which the exactly-once checkpoint already rolls back. The one cost: a transaction the
broker timed out (open longer than ``transaction_timeout_ms``, KIP-588) also reads as fencing, and
the instance exits instead of retrying; a restart resumes from the committed snapshot.
"""

from __future__ import annotations

from typing import Any

from kafka.errors import (
    InvalidProducerEpochError,
    OutOfOrderSequenceNumberError,
    ProducerFencedError,
    UnknownProducerIdError,
)
from kafka.producer.transaction_manager import TransactionManager

_FENCED = (InvalidProducerEpochError, ProducerFencedError)
_ABORTABLE = (OutOfOrderSequenceNumberError, UnknownProducerIdError)  # the rest of its epoch-bump set
_MARK = "_stream_neuron_fencing_fix"


def install() -> None:
    """Idempotent; wraps ``TransactionManager.classify_batch_error``."""
    original = TransactionManager.classify_batch_error
    if getattr(original, _MARK, False):
        return

    def classify_batch_error(self: TransactionManager, error: Any, *args: Any, **kwargs: Any) -> str:
        if self.is_transactional():
            error_type = error if isinstance(error, type) else type(error)
            if issubclass(error_type, _FENCED):
                return str(TransactionManager.ERROR_CLASS_FATAL)
            if issubclass(error_type, _ABORTABLE):
                return str(TransactionManager.ERROR_CLASS_ABORTABLE)
        return str(original(self, error, *args, **kwargs))

    setattr(classify_batch_error, _MARK, True)
    TransactionManager.classify_batch_error = classify_batch_error
