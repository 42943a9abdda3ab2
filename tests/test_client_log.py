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
