"""The Kafka layer's neutral errors: every backend maps its client library's errors to these, and the
code above the Kafka layer catches only these. Each is an :class:`OperatorError`, so one that reaches a
command ends it with one line, never a traceback."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from stream_neuron.errors import OperatorError
from stream_neuron.records import OutputRecord


class KafkaIOError(OperatorError):
    """A Kafka operation failed (the client library's words in the message)."""


class StartupError(KafkaIOError):
    """The command cannot start (no broker, a missing topic, an unusable snapshot...)."""


class BrokerUnavailableError(StartupError):
    """No broker answers (or not in time): a pause of the broker may pass."""


class TopicMissingError(StartupError):
    """A topic the command needs does not exist."""

    def __init__(self, message: str, topic: str = "") -> None:
        super().__init__(message)
        self.topic = topic


class AccessDeniedError(StartupError):
    """The cluster's ACLs refuse this user an operation on a resource (a topic, a consumer group, a
    transactional id, the cluster), which the message names."""

    def __init__(self, message: str, resource: str = "", name: str = "") -> None:
        super().__init__(message)
        self.resource, self.name = resource, name


class TimedOutError(KafkaIOError):
    """The broker did not answer a call within its timeout."""


class AdminError(KafkaIOError):
    """An admin call failed for another reason."""


class PublishError(KafkaIOError):
    """The broker did not acknowledge an output record: nothing past it may be committed."""


class RecordRefusedError(KafkaIOError):
    """The broker (or the client, before sending) refuses a record for what it is: too large, invalid.
    Sending it again cannot help."""


class Refused(NamedTuple):
    """An output record the broker (or the client, before sending) refused for what it is: too large,
    invalid. Sending it again cannot help; the caller replaces it (a dead letter of its input)."""

    record: OutputRecord
    error: RecordRefusedError


class WriteError(KafkaIOError):
    """A record written by a writer (``produce``, a snapshot, a claim) was not acknowledged."""


class TakenOverError(KafkaIOError):
    """Another instance took over this model: this one stops without writing (status 3)."""

    exit_code = 3


class FencedError(TakenOverError):
    """A newer epoch of the transactional id exists: this producer may write nothing more. Whether
    another instance took over or the broker only aborted a transaction that ran too long is the
    transactional output's question (``transactional.py``)."""


class TransactionFailedError(KafkaIOError):
    """The open transaction could not commit; it was aborted (or abandoned to the broker).
    ``refused``: the records the broker refused for what they are, which will fail the same way in
    every retry of the transaction unless they are left out."""

    def __init__(self, message: str, refused: Sequence[Refused] = ()) -> None:
        super().__init__(message)
        self.refused = list(refused)
