"""librdkafka's settings for every client of this backend, from the neutral connection."""

from __future__ import annotations

import logging
from typing import Any

from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.limits import (
    FETCH_MAX_BYTES,
    FETCH_QUEUE_BACKOFF_MS,
    MAX_PARTITION_FETCH_BYTES,
    MAX_REQUEST_BYTES,
    PRODUCER_BATCH_BYTES,
    PRODUCER_LINGER_MS,
    RECONNECT_BACKOFF_MAX_MS,
)

BATCH_MARGIN_BYTES = 1024
# librdkafka's own log lines go to a ``kafka`` logger, digested as kafka-python's are (``client_log``).
CLIENT_LOGGER = logging.getLogger("kafka.rdkafka")
log = logging.getLogger("stream_neuron.kafka")


class LeaderlessNote(logging.Filter):
    """librdkafka's warning that a response named no leader for a partition ("new leader-1 not found
    in cache") is logged at debug, not taken for a client error. A broker fenced for a moment under
    load sends it (seen: four in six minutes on a loaded machine), each a warning and a recovery line
    of no use to an operator: what it can cost, outputs waiting, is said by the at-least-once wait and
    ended by the stalled producer's replacement (``sender.py``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("METADATAUPDATE") and "new leader-1 not found in cache" in message:
            log.debug("Kafka client: %s", message)
            return False
        return True


CLIENT_LOGGER.addFilter(LeaderlessNote())


def client_config(connection: Connection, client_id: str) -> dict[str, Any]:
    """The configuration shared by the consumers, producers and admin clients."""
    config: dict[str, Any] = {
        "bootstrap.servers": connection.bootstrap_servers,
        "client.id": client_id,
        "security.protocol": connection.security_protocol.lower(),
        "logger": CLIENT_LOGGER,
    }
    if connection.tls:
        config["ssl.endpoint.identification.algorithm"] = "https" if connection.ssl_check_hostname else "none"
        for key, value in (
            ("ssl.ca.location", connection.ssl_cafile),
            ("ssl.certificate.location", connection.ssl_certfile),
            ("ssl.key.location", connection.ssl_keyfile),
        ):
            if value is not None:
                config[key] = value
    if connection.sasl:
        config.update(
            {
                "sasl.mechanisms": connection.sasl_mechanism,
                "sasl.username": connection.sasl_username,
                "sasl.password": connection.sasl_password,
            }
        )
    return config


def consumer_config(connection: Connection, client_id: str, group_id: str) -> dict[str, Any]:
    """A reader of records: offsets stored and committed only by its owner, ``read_committed``,
    fetches sized for the largest records a topic may hold."""
    return {
        **client_config(connection, client_id),
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "isolation.level": "read_committed",
        "auto.offset.reset": "earliest",
        "fetch.max.bytes": FETCH_MAX_BYTES,
        "max.partition.fetch.bytes": MAX_PARTITION_FETCH_BYTES,
        "fetch.queue.backoff.ms": FETCH_QUEUE_BACKOFF_MS,
        "receive.message.max.bytes": FETCH_MAX_BYTES + 1024 * 1024,
        "reconnect.backoff.max.ms": RECONNECT_BACKOFF_MAX_MS,
        "enable.partition.eof": False,
    }


def producer_config(
    connection: Connection, client_id: str, compression: str, smallest_topic_limit: int, **extra: Any
) -> dict[str, Any]:
    """``acks=all``, batches never beyond the smallest output topic's limit, records as large as the
    largest output topic takes, Java's partitioner for keyed records."""
    return {
        **client_config(connection, client_id),
        "acks": "all",
        "linger.ms": PRODUCER_LINGER_MS,
        "batch.size": max(min(PRODUCER_BATCH_BYTES, smallest_topic_limit - BATCH_MARGIN_BYTES), 1024),
        "message.max.bytes": MAX_REQUEST_BYTES,
        "compression.type": compression,
        "partitioner": "murmur2_random",
        "reconnect.backoff.max.ms": RECONNECT_BACKOFF_MAX_MS,
        **extra,
    }
