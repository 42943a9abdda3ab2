"""Shared fixtures: one real Kafka broker for the session, per-test uuid topics and groups."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator

import pytest
from kafka.errors import KafkaError

from tests.broker import NoBrokerError, session_broker
from tests.component import kill_leftovers
from tests.kafka_helpers import NAMES_MADE, create_topic, delete_topics_named, unique_name


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    try:
        with session_broker() as bootstrap:
            yield bootstrap
            kill_leftovers()
            try:
                delete_topics_named(bootstrap, NAMES_MADE)
            except KafkaError as error:  # the results stand; only the broker's disk keeps them
                print(f"\nthe session's topics were not all deleted: {error!r}", file=sys.stderr)
    except NoBrokerError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture
def new_topic(kafka_bootstrap: str) -> Callable[..., str]:
    """``new_topic("events", partitions=1, compacted=False)`` creates a uuid-named topic."""

    def make(prefix: str = "topic", partitions: int = 1, compacted: bool = False) -> str:
        return create_topic(kafka_bootstrap, unique_name(prefix), partitions, compacted)

    return make


@pytest.fixture(autouse=True)
def no_leftover_components() -> Iterator[None]:
    yield
    kill_leftovers()


@pytest.fixture
def group_id() -> str:
    return unique_name("group")


@pytest.fixture(params=["compiled", "numpy"])
def kernel(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test on both implementations of the hot paths: the compiled accelerator (built by
    ``pip install``; its absence is a failure, since the machines that run the tests have a C
    compiler) and the numpy reference."""
    from stream_neuron.neuron import accel

    if request.param == "compiled":
        if accel.compiled is None:
            pytest.fail("the compiled kernels are not built: reinstall with a C compiler (pip install -e .)")
    else:
        monkeypatch.setattr(accel, "compiled", None)
    return str(request.param)
