"""The digest of the Kafka clients' own log lines: one warning per outage, one line when it ends."""

from __future__ import annotations

import logging
import re

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


# Every command through the CLI, its work replaced by a client that logs errors with a traceback, as
# kafka-python does when it closes a connection mid-request ("generator already executing", seen in
# `fit` on the kafka-python backend).
NOISY_CLIENT = """
import logging, sys
import stream_neuron.cli as cli

def work(settings):
    for _ in range(3):
        try:
            raise ValueError("generator already executing")
        except ValueError:
            logging.getLogger("kafka.net.selector").error(
                "Error closing coroutine for cancelled task", exc_info=True
            )
    return 0

for name in cli.HANDLERS:
    cli.HANDLERS[name] = work
sys.exit(cli.main(sys.argv[1:]))
"""

COMMANDS = {
    "run": [],
    "score": [],
    "produce": ["--dataset", "synthetic"],
    "monitor": [],
    "check-river": [],
    "fit": ["--input-topic", "events"],
    "topics": [],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_shows_a_client_error_as_one_line_and_counts_the_rest(command: str) -> None:
    import subprocess
    import sys

    from stream_neuron.cli import HANDLERS

    assert set(COMMANDS) == set(HANDLERS)
    done = subprocess.run(
        [sys.executable, "-c", NOISY_CLIENT, command, *COMMANDS[command]],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    lines = [line.split(" stream_neuron.kafka: ", 1)[1] for line in done.stderr.splitlines()]
    assert len(lines) == 2
    assert lines[0] == (
        "Kafka client: Error closing coroutine for cancelled task (until it recovers, further client "
        "errors are counted, not shown)"
    )
    assert re.fullmatch(r"Kafka client recovered after \d+ s \(2 client errors not shown\)", lines[1])
