"""Reading the newest snapshot of a model from the compacted model topic."""

from __future__ import annotations

import json
import logging
from typing import Any

from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.errors import StartupError
from stream_neuron.kafka_io.topic_reader import read_topic

log = logging.getLogger(__name__)


def load_snapshot(
    connection: Connection, model_topic: str, model_name: str, timeout_s: float = 60.0
) -> dict[str, Any] | None:
    """The last committed snapshot keyed ``model_name`` (None when the model is new)."""
    key = model_name.encode()
    latest: bytes | None = None
    for record_key, value in read_topic(connection, model_topic, f"{model_name}-snapshot-reader", timeout_s):
        if record_key == key:
            latest = value  # None: a tombstone deleted the model
    if latest is None:
        return None
    try:
        snapshot: dict[str, Any] = json.loads(latest)
    except ValueError as error:
        raise StartupError(
            f"the newest snapshot of {model_name!r} in {model_topic} is not valid JSON: {error}"
        ) from error
    log.info("restoring model %r version %s from %s", model_name, snapshot.get("version"), model_topic)
    return snapshot
