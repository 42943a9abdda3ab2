"""kafka-python's settings for every client of this backend, from the neutral connection; and the one
place its clients are made, so its fixes are installed wherever it makes a consumer or a producer."""

from __future__ import annotations

import functools
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError
from kafka.net.compat import KafkaNetClient
from kafka.net.selector import NetworkSelector

from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.errors import BrokerUnavailableError
from stream_neuron.kafka_io.kafka_python import fencing_fix, header_keys_fix, join_fix, metadata_fix
from stream_neuron.kafka_io.limits import (
    MAX_REQUEST_BYTES,
    PRODUCER_BATCH_BYTES,
    PRODUCER_LINGER_MS,
    RECONNECT_BACKOFF_MAX_MS,
)

BATCH_MARGIN_BYTES = 1024


def _network_client() -> dict[str, Any]:
    """kafka-python 3.0's I/O loop warns of every step that took over 0.1 s ("blocking the event loop"):
    in a process whose main thread holds the GIL for its own work (decoding, the maths) that happens on
    healthy runs, and tells the operator nothing. The threshold is its network client's setting."""
    if "slow_task_threshold_secs" not in NetworkSelector.DEFAULT_CONFIG:
        return {}
    return {"kafka_client": functools.partial(KafkaNetClient, slow_task_threshold_secs=0)}


def client_config(connection: Connection, client_id: str) -> dict[str, Any]:
    """The configuration shared by the consumers, producers and admin clients."""
    config: dict[str, Any] = {
        "bootstrap_servers": connection.bootstrap_servers,
        "client_id": client_id,
        "security_protocol": connection.security_protocol,
        **_network_client(),
    }
    if connection.tls:
        config.update(
            ssl_cafile=connection.ssl_cafile,
            ssl_certfile=connection.ssl_certfile,
            ssl_keyfile=connection.ssl_keyfile,
            ssl_check_hostname=connection.ssl_check_hostname,
        )
    if connection.sasl:
        config.update(
            sasl_mechanism=connection.sasl_mechanism,
            sasl_plain_username=connection.sasl_username,
            sasl_plain_password=connection.sasl_password,
        )
    return config


def producer_config(
    connection: Connection,
    client_id: str,
    compression: str = "none",
    smallest_topic_limit: int = PRODUCER_BATCH_BYTES,
    **overrides: Any,
) -> dict[str, Any]:
    """``acks=all`` with batching sized for a poll's outputs and requests for the largest record. A
    batch never outgrows the output topic that takes the smallest records (a topic refuses a batch
    larger than its max.message.bytes, however small its records)."""
    config: dict[str, Any] = {
        **client_config(connection, client_id),
        "compression_type": None if compression == "none" else compression,
        "acks": "all",
        "linger_ms": PRODUCER_LINGER_MS,
        "batch_size": max(min(PRODUCER_BATCH_BYTES, smallest_topic_limit - BATCH_MARGIN_BYTES), 1024),
        "max_request_size": MAX_REQUEST_BYTES,
        "reconnect_backoff_max_ms": RECONNECT_BACKOFF_MAX_MS,
    }
    config.update(overrides)
    return config


def new_consumer(connection: Connection, **config: Any) -> KafkaConsumer:
    """A consumer, with the header-key, outage spin and group join fixes installed (every reader of this
    backend needs the first; a group member the last)."""
    header_keys_fix.install()
    metadata_fix.install()
    join_fix.install()
    try:
        return KafkaConsumer(**config)
    except KafkaError as error:
        raise BrokerUnavailableError(
            f"no Kafka broker answers at {connection.bootstrap_servers} ({error.__class__.__name__})"
        ) from None


def new_producer(connection: Connection, config: dict[str, Any]) -> KafkaProducer:
    """A producer, with the outage spin fix installed; a transactional one with the fencing fix too."""
    metadata_fix.install()
    if config.get("transactional_id"):
        fencing_fix.install()
    try:
        return KafkaProducer(**config)
    except KafkaError as error:
        raise BrokerUnavailableError(
            f"no Kafka broker answers at {connection.bootstrap_servers} ({error.__class__.__name__})"
        ) from None
