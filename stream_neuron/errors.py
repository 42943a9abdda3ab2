"""The one error type every command reports as one line, never a traceback."""

from __future__ import annotations


class OperatorError(RuntimeError):
    """Something an operator can fix (no broker, a missing topic, an unreadable file or snapshot):
    the command ends with ``stream-neuron <command>: <message>`` and ``exit_code``."""

    exit_code = 1
