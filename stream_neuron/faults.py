"""Crash injection at exact points of a checkpoint, for the tests only.

``STREAM_NEURON_TEST_CRASH_AT=<point>`` with ``STREAM_NEURON_TEST_CRASH_ON=<n>`` kills the process
(SIGKILL, no clean-up) the n-th time it reaches ``<point>``. Unset, :func:`crash_point` is a no-op.
Points: ``after-publish`` (a batch's outputs handed to the producer, no checkpoint yet),
``after-produce`` (outputs and snapshot acknowledged, offsets not yet: at least once, when the
snapshot's acknowledgement is seen, before the outputs held back behind it are sent),
``after-offsets`` (exactly-once: offsets sent to the transaction, not yet committed), ``after-commit``.
"""

from __future__ import annotations

import os
import signal

_POINT = os.environ.get("STREAM_NEURON_TEST_CRASH_AT")
_ON = int(os.environ.get("STREAM_NEURON_TEST_CRASH_ON", "1"))
_seen = 0


def crash_point(name: str) -> None:
    global _seen
    if name != _POINT:
        return
    _seen += 1
    if _seen >= _ON:
        os.kill(os.getpid(), signal.SIGKILL)
