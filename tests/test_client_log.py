"""The digest of the Kafka clients' own log lines: one warning per outage, one line when it ends."""

from __future__ import annotations

import logging

import pytest

from stream_neuron.kafka_io import client_log
from stream_neuron.kafka_io.client_log import SETTLE_S, ClientErrorDigest


def error(text: str) -> logging.LogRecord:
    return logging.LogRecord("kafka.client", logging.ERROR, __file__, 1, text, None, None)


def test_reconnect_errors_right_after_a_recovery_belong_to_the_same_outage(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    now = [1000.0]
    monkeypatch.setattr(client_log.time, "monotonic", lambda: now[0])
    digest = ClientErrorDigest()
    with caplog.at_level(logging.WARNING, logger="stream_neuron.kafka"):
        for _ in range(50):  # the outage
            digest.emit(error("connection refused"))
        now[0] += 26
        digest.recovered()
        now[0] += 0.5
        digest.emit(error("No node available for metadata refresh"))  # a client reconnecting
        now[0] += SETTLE_S - 1
        digest.emit(error("No node available for metadata refresh"))
        digest.recovered()
        now[0] += 2  # past the settling time: a new outage is shown
        digest.emit(error("connection refused"))
        digest.recovered()
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "Kafka client: connection refused (until it recovers, further client errors are counted, not shown)",
        "Kafka client recovered after 26 s (49 client errors not shown)",
        "Kafka client: connection refused (until it recovers, further client errors are counted, not shown)",
        "Kafka client recovered after 0 s (0 client errors not shown)",
    ]


def test_librdkafka_naming_no_leader_for_a_partition_is_not_an_outage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A broker fenced for a moment: librdkafka's METADATAUPDATE warning is at debug, not digested as a
    client error; its other warnings are."""
    from stream_neuron.kafka_io.librdkafka.config import CLIENT_LOGGER

    digest = ClientErrorDigest()
    CLIENT_LOGGER.addHandler(digest)
    try:
        with caplog.at_level(logging.DEBUG, logger="stream_neuron.kafka"):
            CLIENT_LOGGER.warning(
                "%s [%s] %s", "METADATAUPDATE", "p#producer-1",
                "[thrd:main]: Partition t(x)[0]: new leader-1 not found in cache",
            )  # fmt: skip
            assert digest.count == 0
            assert caplog.records[-1].levelno == logging.DEBUG
            CLIENT_LOGGER.warning("%s [%s] %s", "REQTMOUT", "p#producer-1", "Timed out 15 in-flight")
            assert digest.count == 1
    finally:
        CLIENT_LOGGER.removeHandler(digest)
