"""kafka-python's errors as the ports' neutral ones: :func:`neutral` maps one, :func:`translated` makes
a class's public methods raise only neutral errors (the layer above never sees ``kafka.errors``)."""

from __future__ import annotations

from kafka.errors import (
    AuthorizationError,
    ClusterAuthorizationFailedError,
    CorruptRecordError,
    GroupAuthorizationFailedError,
    InvalidProducerEpochError,
    InvalidRecordError,
    InvalidTimestampError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NodeNotReadyError,
    ProducerFencedError,
    RecordListTooLargeError,
    RequestTimedOutError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)

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

RECORD_ERRORS = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    InvalidRecordError,
    CorruptRecordError,
    InvalidTimestampError,
)
"""The broker (or the client, before sending) refuses the record itself: sending it again cannot help."""

FENCING_ERRORS = (ProducerFencedError, InvalidProducerEpochError)

_DENIED = {
    TopicAuthorizationFailedError: "topic",
    GroupAuthorizationFailedError: "consumer group",
    TransactionalIdAuthorizationFailedError: "transactional id",
    ClusterAuthorizationFailedError: "cluster",
}


def is_fenced(error: BaseException) -> bool:
    """kafka-python reports fencing as the error class, or, once the producer is in its error state,
    as a plain KafkaError naming it."""
    if isinstance(error, FENCING_ERRORS):
        return True
    return isinstance(error, KafkaError) and any(cls.__name__ in str(error) for cls in FENCING_ERRORS)


def refused_for_itself(error: BaseException) -> bool:
    return isinstance(error, RECORD_ERRORS)


def described(error: BaseException) -> str:
    text = str(error)
    name = type(error).__name__
    return name if not text or text == name else f"{name}: {text}"


def neutral(error: BaseException, what: str = "") -> KafkaIOError:
    """The neutral error for one of kafka-python's; ``what`` says what was being done."""
    if isinstance(error, KafkaIOError):
        return error
    text = f"{what}: {described(error)}" if what else described(error)
    if is_fenced(error):
        return FencedError(text)
    if isinstance(error, AuthorizationError):
        resource = next((r for cls, r in _DENIED.items() if isinstance(error, cls)), "resource")
        return AccessDeniedError(f"not authorized ({text})", resource)
    if isinstance(error, RECORD_ERRORS):
        return RecordRefusedError(text)
    if isinstance(error, UnknownTopicOrPartitionError):
        return TopicMissingError(text)
    if isinstance(error, KafkaTimeoutError | RequestTimedOutError):
        return TimedOutError(text)
    if isinstance(error, KafkaConnectionError | NodeNotReadyError):
        return BrokerUnavailableError(text)
    return KafkaIOError(text)


TRANSLATION = Translation(KafkaError, neutral)
translated = TRANSLATION.cls
translated_function = TRANSLATION.function
