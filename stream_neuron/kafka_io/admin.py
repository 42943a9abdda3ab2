"""Topic checks and creation at start-up."""

from __future__ import annotations

import contextlib
import logging

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from stream_neuron.config import Settings
from stream_neuron.kafka_io.errors import StartupError

log = logging.getLogger(__name__)

# Dead letters carry the original value, so their topic must take whatever the input topic took.
DEAD_LETTER_MAX_BYTES = 16 * 1024 * 1024


def admin_client(bootstrap_servers: str, client_id: str) -> KafkaAdminClient:
    try:
        return KafkaAdminClient(
            bootstrap_servers=bootstrap_servers, client_id=client_id, request_timeout_ms=15000
        )
    except KafkaError as error:
        raise StartupError(
            f"no Kafka broker answers at {bootstrap_servers}: start one or fix --bootstrap-servers"
        ) from error


def ensure_topics(settings: Settings) -> None:
    """The input topic must exist; missing output topics are created (the model topic compacted)."""
    admin = admin_client(settings.bootstrap_servers, f"{settings.model_name}-admin")
    try:
        existing = set(admin.list_topics())
        if settings.input_topic not in existing:
            raise StartupError(
                f"input topic {settings.input_topic!r} does not exist on {settings.bootstrap_servers}: "
                "create it, or set --input-topic"
            )
        wanted = {
            settings.predictions_topic: {},
            settings.metrics_topic: {},
            settings.dead_letter_topic: {"max.message.bytes": str(DEAD_LETTER_MAX_BYTES)},
            settings.model_topic: {"cleanup.policy": "compact"},
        }
        missing = [
            NewTopic(
                name,
                settings.topic_partitions if name != settings.model_topic else 1,
                -1,
                topic_configs=configs,
            )
            for name, configs in wanted.items()
            if name not in existing
        ]
        if not missing or not settings.create_topics:
            if missing:
                names = ", ".join(t.name for t in missing)
                raise StartupError(
                    f"output topics missing: {names} (create them, or drop --no-create-topics)"
                )
            return
        with contextlib.suppress(TopicAlreadyExistsError):  # another instance created them first
            admin.create_topics(missing)
        log.info("created topics %s", ", ".join(t.name for t in missing))
    except KafkaError as error:
        raise StartupError(f"topic set-up failed on {settings.bootstrap_servers}: {error}") from error
    finally:
        admin.close()
