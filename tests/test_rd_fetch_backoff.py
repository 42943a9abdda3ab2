"""The librdkafka input consumer resumes fetching soon after its local queue was full.

librdkafka stops fetching a partition while its queue holds 64 MiB (or 100,000 messages) and looks
again only after ``fetch.queue.backoff.ms``, 1 s by default: a trainer catching up a backlog drained
the queue and then sat in ``consume()`` for the rest of that second (limits.FETCH_QUEUE_BACKOFF_MS).
The model follower's tail takes the same configuration (``consumer_config``). No broker is needed:
the client is only built, which is where librdkafka refuses a property it does not know."""

from __future__ import annotations

from confluent_kafka import Consumer

from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.librdkafka.config import consumer_config
from stream_neuron.kafka_io.limits import FETCH_QUEUE_BACKOFF_MS


def test_the_input_consumer_backs_off_a_full_queue_briefly_and_the_client_takes_it() -> None:
    config = consumer_config(Connection(bootstrap_servers="127.0.0.1:1"), "backoff-test", "backoff-group")
    assert config["fetch.queue.backoff.ms"] == FETCH_QUEUE_BACKOFF_MS <= 50
    Consumer(config).close()
