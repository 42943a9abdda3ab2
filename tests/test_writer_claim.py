"""The writer claim's watch of the model topic, on a real broker: a consumer that fails to read the
topic's offsets is replaced, from where it had read, and the next read finds a newer claim."""

from __future__ import annotations

from typing import Any

import pytest
from kafka import KafkaProducer

from stream_neuron.kafka_io import writer_claim
from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.errors import KafkaIOError, TakenOverError, TimedOutError
from stream_neuron.kafka_io.writer_claim import WriterClaim
from tests.kafka_helpers import create_topic, unique_name

pytestmark = pytest.mark.kafka


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_a_watch_that_cannot_read_the_offsets_is_replaced_and_still_sees_a_newer_claim(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch, client: str
) -> None:
    """librdkafka: after a broker restart the watch's consumer was seen failing every read of the
    model topic's offsets (``_UNKNOWN_PARTITION``) for ten minutes, while a fenced run had to read the
    claims before it could go on. A failed read to the end replaces the consumer; the new one reads
    on from the old one's place, and a claim another instance writes afterwards stops this one."""
    connection = Connection(bootstrap_servers=kafka_bootstrap, client=client)
    topic = create_topic(kafka_bootstrap, unique_name("model"))
    tails: list[Any] = []
    made = writer_claim.backend

    def recording(connection: Connection) -> Any:
        kafka = made(connection)

        class Recorded:
            def __getattr__(self, name: str) -> Any:
                return getattr(kafka, name)

            def tail(self, *args: Any) -> Any:
                tails.append(kafka.tail(*args))
                return tails[-1]

        return Recorded()

    monkeypatch.setattr(writer_claim, "backend", recording)
    first = WriterClaim(connection, topic, "m")
    try:
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
        for n in range(40):  # snapshots, read once
            producer.send(topic, key=b"m", value=b'{"version": %d}' % n)
        producer.flush()
        producer.close()
        first.check_to_end()  # its own claim and the snapshots: no one else's claim
        [stuck] = tails

        def fails() -> dict[int, int]:
            raise TimedOutError("the offsets of the model topic: _UNKNOWN_PARTITION")

        monkeypatch.setattr(stuck, "end_offsets", fails)
        with pytest.raises(KafkaIOError, match="_UNKNOWN_PARTITION"):
            first.check_to_end()
        assert len(tails) == 2, "the watch's consumer was not replaced"
        read_again: list[Any] = []
        poll = tails[1].poll
        monkeypatch.setattr(tails[1], "poll", lambda timeout_ms: read_again.extend(poll(timeout_ms)) or [])
        first.check_to_end()  # the new consumer reads to the end: from where the old one was
        assert read_again == []
        monkeypatch.setattr(tails[1], "poll", poll)
        second = WriterClaim(connection, topic, "m")  # another instance of the model starts
        second.close()
        with pytest.raises(TakenOverError, match="another instance took over model 'm'"):
            first.check_to_end()
    finally:
        first.close()
