"""A scorer's group membership on a real broker: a member joins and gets its partitions however short
its polls are (kafka-python 3.0 forgot a join its poll's time ran out in; ``join_fix``)."""

from __future__ import annotations

import time

import pytest

from stream_neuron.kafka_io import clients
from stream_neuron.kafka_io.connection import Connection
from tests.component import send
from tests.kafka_helpers import create_topic, unique_name

pytestmark = pytest.mark.kafka

MEMBERS = 5
POLL_MS = 2  # a join (JoinGroup, assignment, SyncGroup) takes longer: every poll's time runs out in it


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_a_new_member_polling_briefly_gets_every_partition_and_reads_them(
    kafka_bootstrap: str, client: str
) -> None:
    """Each of five new members (a group each) of a two-partition topic polls 2 ms at a time: each
    is assigned both partitions and reads every record, within 20 s. On kafka-python 3.0.12 without
    the fix, none ever was: the join its first assignment asked for was left unfinished."""
    connection = Connection(bootstrap_servers=kafka_bootstrap, client=client)
    topic = create_topic(kafka_bootstrap, unique_name("requests"), partitions=2)
    send(bootstrap=kafka_bootstrap, topic=topic, values=[b"%d" % n for n in range(40)])
    for member in range(MEMBERS):
        revoked: list[set[tuple[str, int]]] = []
        group = clients.group_input(
            connection, topic, unique_name("scorers"), f"member{member}", 100, revoked.append
        )
        try:
            read: list[bytes | None] = []
            deadline = time.monotonic() + 20
            while len(read) < 40 and time.monotonic() < deadline:
                read += [record.value for record in group.poll(POLL_MS, 100)]
            assert group.assignment() == [(topic, 0), (topic, 1)], f"member {member}"
            assert sorted(read, key=lambda v: int(v or b"-1")) == [b"%d" % n for n in range(40)], (
                f"member {member}"
            )
        finally:
            group.close()
