"""``stream-neuron topics``: the topics of a stack created in one process, as the commands need them.

What ``run`` and ``score`` would create on their own at start-up, done once beforehand: a compose
stack's one-shot service, an operator preparing a cluster whose users may not create topics (the
command's user needs CREATE and DESCRIBE on the topics, or on the cluster)."""

from __future__ import annotations

from stream_neuron.command_config import TopicsSettings
from stream_neuron.kafka_io.admin import TopicNeed, dead_letter_topic_spec, ensure_topics, model_topic_spec
from stream_neuron.kafka_io.ports import TopicSpec
from stream_neuron.kafka_io.probe import probe

DESCRIBE = ("DESCRIBE",)


def stack_topics(settings: TopicsSettings) -> list[TopicNeed]:
    partitions = settings.topic_partitions
    specs = [
        ("input topic", TopicSpec(settings.input_topic, partitions)),
        ("predictions topic", TopicSpec(settings.predictions_topic, partitions)),
        ("metrics topic", TopicSpec(settings.metrics_topic, partitions)),
        ("dead-letter topic", dead_letter_topic_spec(settings.dead_letter_topic, partitions)),
        ("model topic", model_topic_spec(settings.model_topic)),
    ]
    if settings.requests_topic:
        specs.append(("requests topic", TopicSpec(settings.requests_topic, settings.requests_partitions)))
    if settings.labels_topic:
        specs.append(("labels topic", TopicSpec(settings.labels_topic, partitions)))
    return [TopicNeed(spec.name, what, DESCRIBE, spec) for what, spec in specs]


def create_topics(settings: TopicsSettings) -> tuple[list[str], list[str]]:
    """(created, already there): the stack's topics, by name."""
    connection = settings.connection
    probe(connection, settings.connect_timeout_s)
    needs = stack_topics(settings)
    created = ensure_topics(connection, "stream-neuron-topics", needs)
    return created, [need.name for need in needs if need.name not in created]
