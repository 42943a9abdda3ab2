"""librdkafka's admin clients go with their last reference, on the thread that drops it, never with a
garbage collection: one collected on its own background thread (where confluent-kafka settles its
futures) makes librdkafka abort the process. A failed request is where a cycle used to form (the raised
exception's traceback held the waiting frame, and through it the future and the client), so each test
fails a request on a port nothing listens on and counts the admin clients the collector could still see.
No broker is needed."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka.admin import AdminClient

from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.errors import KafkaIOError
from stream_neuron.kafka_io.librdkafka.admin import RdAdmin, group_denied
from stream_neuron.kafka_io.ports import TopicSpec

NOBODY = Connection(bootstrap_servers="127.0.0.1:1")


def admin_clients() -> int:
    return sum(isinstance(o, AdminClient) for o in gc.get_objects())


@pytest.fixture
def collector_off() -> Iterator[None]:
    """What only a collection could free stays countable for the test's length."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_a_group_check_without_a_broker_is_no_denial_and_leaves_no_client(collector_off: None) -> None:
    before = admin_clients()
    assert group_denied(NOBODY, "a-group", timeout_s=1) is False
    assert admin_clients() == before


@pytest.mark.parametrize(
    "request_",
    [
        lambda admin: admin.describe(["a-topic"]),
        lambda admin: admin.configs(["a-topic"], "cleanup.policy"),
        lambda admin: admin.create([TopicSpec("a-topic")]),
    ],
    ids=["describe", "configs", "create"],
)
def test_a_closed_admin_leaves_no_client_whatever_its_requests_did(
    collector_off: None, request_: Callable[[RdAdmin], object]
) -> None:
    before = admin_clients()
    admin = RdAdmin(NOBODY, "t", 1000)
    with pytest.raises(KafkaIOError):
        request_(admin)
    admin.close()
    assert admin_clients() == before
    with pytest.raises(KafkaIOError, match="closed"):
        admin.describe(["a-topic"])
