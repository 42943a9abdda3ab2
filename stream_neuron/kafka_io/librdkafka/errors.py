"""librdkafka's errors (confluent-kafka's ``KafkaException`` carrying a ``KafkaError``) as the ports'
neutral ones: :func:`neutral` maps one, :func:`translated` makes a class's public methods raise only
neutral errors (the layer above never sees ``confluent_kafka``)."""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError, KafkaException

from stream_neuron.kafka_io.errors import (
    AccessDeniedError,
    BrokerUnavailableError,
    FencedError,
    KafkaIOError,
    RecordRefusedError,
    TimedOutError,
    TopicMissingError,
)
from stream_neuron.kafka_io.translation import Translation


def _codes(*names: str) -> frozenset[int]:
    return frozenset(getattr(KafkaError, name) for name in names if hasattr(KafkaError, name))


REFUSED = _codes(
    "MSG_SIZE_TOO_LARGE", "_MSG_SIZE_TOO_LARGE", "INVALID_RECORD", "INVALID_TIMESTAMP", "INVALID_MSG",
    "INVALID_MSG_SIZE", "RECORD_LIST_TOO_LARGE", "MSG_SET_TOO_LARGE",
)  # fmt: skip
"""The broker (or the client, before sending) refuses the record itself: sending it again cannot help."""

FENCING = _codes("PRODUCER_FENCED", "_FENCED", "INVALID_PRODUCER_EPOCH", "TRANSACTION_COORDINATOR_FENCED")
MISSING = _codes("UNKNOWN_TOPIC_OR_PART", "_UNKNOWN_TOPIC", "_UNKNOWN_PARTITION")
TIMED_OUT = _codes("_TIMED_OUT", "REQUEST_TIMED_OUT", "_MSG_TIMED_OUT", "_TIMED_OUT_QUEUE")
UNAVAILABLE = _codes("_TRANSPORT", "_ALL_BROKERS_DOWN", "_RESOLVE", "BROKER_NOT_AVAILABLE", "_NODE_UPDATE")
NOT_YET = _codes("NOT_LEADER_FOR_PARTITION", "LEADER_NOT_AVAILABLE", "UNKNOWN_TOPIC_OR_PART")
"""A topic created a moment ago has no leader yet: asked again shortly, the broker will know."""
DENIED = {
    KafkaError.TOPIC_AUTHORIZATION_FAILED: "topic",
    KafkaError.GROUP_AUTHORIZATION_FAILED: "consumer group",
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED: "transactional id",
    KafkaError.CLUSTER_AUTHORIZATION_FAILED: "cluster",
}


def carried(error: Any) -> KafkaError | None:
    """The ``KafkaError`` that ``error`` is or that its ``KafkaException`` carries; else ``None``."""
    if isinstance(error, KafkaException) and error.args and isinstance(error.args[0], KafkaError):
        return error.args[0]
    return error if isinstance(error, KafkaError) else None


def code_of(error: Any) -> int | None:
    """The code of the ``KafkaError`` that ``error`` carries, if it carries one."""
    kafka_error = carried(error)
    return None if kafka_error is None else int(kafka_error.code())


def described(error: Any) -> str:
    """A ``KafkaError`` (or an exception carrying one) in one line: its name and its text."""
    error = carried(error) or error
    if isinstance(error, KafkaError):
        return f"{error.name()}: {error.str()}"
    return str(error) or type(error).__name__


def is_fenced(error: KafkaError) -> bool:
    return bool(error.code() in FENCING or (error.fatal() and "fenced" in error.str().lower()))


def neutral(error: Any, what: str = "") -> KafkaIOError:
    """The neutral error for a librdkafka ``KafkaError`` (or ``KafkaException``); ``what`` says what was
    being done."""
    if isinstance(error, KafkaIOError):
        return error
    text = f"{what}: {described(error)}" if what else described(error)
    error = carried(error)
    if error is None:
        return KafkaIOError(text)
    code = error.code()
    if is_fenced(error):
        return FencedError(text)
    if code in DENIED:
        return AccessDeniedError(f"not authorized ({text})", DENIED[code])
    if code in REFUSED:
        return RecordRefusedError(text)
    if code in MISSING:
        return TopicMissingError(text)
    if code in TIMED_OUT:
        return TimedOutError(text)
    if code in UNAVAILABLE:
        return BrokerUnavailableError(text)
    return KafkaIOError(text)


TRANSLATION = Translation(KafkaException, neutral)
translated = TRANSLATION.cls
translated_function = TRANSLATION.function
