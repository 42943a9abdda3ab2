"""A fenced transactional producer must stop, not take its transactional id back.

Upstream behaviour it corrects: kafka-python 3.0 (up to at least 3.0.12),
``kafka/producer/transaction_manager.py``, ``TransactionManager.classify_batch_error``, answers the
produce errors ``INVALID_PRODUCER_EPOCH``, ``OUT_OF_ORDER_SEQUENCE_NUMBER`` and ``UNKNOWN_PRODUCER_ID``
with ``ERROR_CLASS_NEEDS_EPOCH_BUMP`` (KIP-360), also for transactional producers. When another
instance has taken the transactional id over, the broker refuses that bump, and kafka-python then falls
back to a fresh ``InitProducerId`` without an epoch: the old instance fences the new one, so the
zombie wins. The Java client bumps epochs itself only for idempotent producers; a transactional one
treats these errors as fatal (or abortable) and leaves recovery to the application.

:func:`install` restores that rule: these errors become fatal to a transactional producer
(idempotent producers keep kafka-python's recovery). The exactly-once checkpoint then tells them
apart: the fencing errors (``InvalidProducerEpochError``, ``ProducerFencedError``) stop the instance
with status 3; the sequence errors, which a broker restart can cause, end in an abort, a new producer
(a fresh epoch with fresh sequence numbers) and a rollback to the committed snapshot. The one cost: a
transaction the broker timed out (open longer than ``transaction_timeout_ms``, KIP-588) also reads as
fencing, and the instance exits instead of retrying; a restart resumes from the committed snapshot.

It is installed when a transactional producer is made, after checking that kafka-python's method is
the one it was written against (same parameters, same outcome names); a kafka-python release outside
the tested 3.0 series is named in a warning, and one whose method differs is refused.
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

from stream_neuron.kafka_io.errors import StartupError
from stream_neuron.kafka_io.kafka_python.patching import check_patchable

_EPOCH_BUMP_ERRORS = (
    InvalidProducerEpochError,
    ProducerFencedError,
    OutOfOrderSequenceNumberError,
    UnknownProducerIdError,
)
_EXPECTED_PARAMETERS = ["self", "error", "batch", "log_start_offset"]
_MARK = "_stream_neuron_fencing_fix"


def install() -> None:
    """Idempotent; wraps ``TransactionManager.classify_batch_error`` (see the module docstring)."""
    original = TransactionManager.classify_batch_error
    if getattr(original, _MARK, False):
        return
    check_patchable(original, _EXPECTED_PARAMETERS, "exactly-once's fencing fix")
    if not hasattr(TransactionManager, "ERROR_CLASS_FATAL"):
        raise StartupError("exactly-once's fencing fix: kafka-python's TransactionManager has no fatal class")

    def classify_batch_error(self: TransactionManager, error: Any, *args: Any, **kwargs: Any) -> str:
        if self.is_transactional():
            error_type = error if isinstance(error, type) else type(error)
            if issubclass(error_type, _EPOCH_BUMP_ERRORS):
                return str(TransactionManager.ERROR_CLASS_FATAL)
        return str(original(self, error, *args, **kwargs))

    setattr(classify_batch_error, _MARK, True)
    TransactionManager.classify_batch_error = classify_batch_error
