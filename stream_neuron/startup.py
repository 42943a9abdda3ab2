"""What ``run`` settles before its first poll: the topics and their limits, the model to continue and
where its input resumes. Every problem here ends the start with one line; where the operator must
choose (a deleted, unusable or out-of-range snapshot), the line names ``--on-bad-snapshot``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence

from stream_neuron.config import Settings
from stream_neuron.kafka_io.admin import (
    TopicNeed,
    dead_letter_topic_spec,
    ensure_topics,
    model_topic_spec,
    topic_configs,
)
from stream_neuron.kafka_io.clients import read_ranges
from stream_neuron.kafka_io.connection import Connection
from stream_neuron.kafka_io.limits import MAX_REQUEST_BYTES
from stream_neuron.kafka_io.ports import Input, TopicSpec
from stream_neuron.kafka_io.probe import probe
from stream_neuron.kafka_io.snapshot_store import StoredSnapshot
from stream_neuron.outputs import OutputLimits
from stream_neuron.processor import LagSource, Processor
from stream_neuron.snapshots import NEW_MODEL_HINT, SnapshotError

log = logging.getLogger("stream_neuron")

# The producer's own framing inside a request: a record may take what is left.
REQUEST_MARGIN_BYTES = 64 * 1024


# What a run does with each topic, as Kafka ACL operations.
READS = ("READ", "DESCRIBE")
WRITES = ("WRITE", "DESCRIBE", "DESCRIBE_CONFIGS")


def run_topics(settings: Settings) -> list[TopicNeed]:
    """The topics a run uses: the input must exist; the outputs are created when missing (the model
    topic compacted, one partition, sized for large models; the dead-letter topic sized for whatever
    the input takes). The run reads the model topic back too."""
    partitions = settings.topic_partitions
    return [
        TopicNeed(settings.input_topic, "input topic", READS, None, "create it, or set --input-topic"),
        *(
            [
                TopicNeed(
                    settings.labels_topic, "labels topic", READS, None, "create it, or fix --labels-topic"
                )
            ]
            if settings.labels_topic
            else []
        ),
        TopicNeed(
            settings.predictions_topic,
            "predictions topic",
            WRITES,
            TopicSpec(settings.predictions_topic, partitions),
        ),
        TopicNeed(
            settings.metrics_topic, "metrics topic", WRITES, TopicSpec(settings.metrics_topic, partitions)
        ),
        TopicNeed(
            settings.dead_letter_topic,
            "dead-letter topic",
            WRITES,
            dead_letter_topic_spec(settings.dead_letter_topic, partitions),
        ),
        TopicNeed(
            settings.model_topic, "model topic", (*WRITES, "READ"), model_topic_spec(settings.model_topic)
        ),
    ]


def prepare_topics(settings: Settings) -> None:
    """The broker answers, the input topic exists, the output topics exist (created when missing)."""
    connection = settings.connection
    probe(connection, settings.connect_timeout_s)
    ensure_topics(connection, f"{settings.model_name}-admin", run_topics(settings), settings.create_topics)
    policy = topic_configs(
        connection, f"{settings.model_name}-admin", [settings.model_topic], "cleanup.policy"
    )
    if "compact" not in policy.get(settings.model_topic, "compact"):
        log.warning(
            "model topic %s is not compacted (cleanup.policy=%s): old snapshots are deleted by retention, "
            "and the newest with them once it ages out",
            settings.model_topic,
            policy[settings.model_topic],
        )


def topic_limits(connection: Connection, client: str, names: Sequence[str]) -> list[int]:
    """The largest record each topic takes (its max.message.bytes, within what one producer request
    can carry), in the order of ``names``."""
    limits = topic_configs(connection, f"{client}-admin", names, "max.message.bytes")
    ceiling = MAX_REQUEST_BYTES - REQUEST_MARGIN_BYTES
    return [
        min(int(value), ceiling) if (value := limits.get(name)) is not None and value.isdigit() else ceiling
        for name in names
    ]


def output_limits(settings: Settings) -> OutputLimits:
    """The largest record each output topic of a run takes."""
    predictions, dead_letters, metrics, model = topic_limits(
        settings.connection,
        settings.model_name,
        [
            settings.predictions_topic,
            settings.dead_letter_topic,
            settings.metrics_topic,
            settings.model_topic,
        ],
    )
    return OutputLimits(predictions, dead_letters, metrics, model)


def restored_processor(
    settings: Settings, stored: StoredSnapshot | None, now: float, lag: LagSource, limits: OutputLimits
) -> tuple[Processor, bool]:
    """The processor continuing the newest snapshot; a deleted or unusable one ends the start, unless
    the operator chose ``--on-bad-snapshot new-model``. True with it when that choice was taken."""
    name, topic = settings.model_name, settings.model_topic
    try:
        if stored is None:
            return Processor.restored(settings, None, now, lag, limits), False
        if stored.value is None:
            raise SnapshotError(
                f"model {name!r} was deleted (its newest record on {topic} is a tombstone); {NEW_MODEL_HINT}"
            )
        try:
            snapshot = json.loads(stored.value)
        except (ValueError, RecursionError) as error:
            raise SnapshotError(
                f"the newest snapshot of model {name!r} on {topic} is not valid JSON ({error}); "
                + NEW_MODEL_HINT
            ) from None
        processor = Processor.restored(settings, snapshot, now, lag, limits)
        log.info("restoring model %r version %s from %s", name, snapshot.get("version"), topic)
        return processor, False
    except SnapshotError as error:
        if settings.on_bad_snapshot != "new-model":
            raise
        log.warning("%s: starting a new model (--on-bad-snapshot new-model)", error)
        return Processor.restored(settings, None, now, lag, limits), True


def lost_model(settings: Settings, stored: StoredSnapshot | None, input: Input) -> bool:
    """A model without a snapshot whose consumer group has committed offsets of the input has run
    before, and its snapshots are gone (the model topic deleted, say): refused like an unusable
    snapshot, unless the operator chose ``--on-bad-snapshot new-model`` (True: that choice was taken,
    the new model starts from the group's offsets)."""
    if stored is not None:
        return False
    committed = sorted(
        f"{t}:{p}" for (t, p), offset in input.committed_positions().items() if offset is not None
    )
    if not committed:
        return False
    problem = (
        f"model {settings.model_name!r} has no snapshot on {settings.model_topic}, but consumer group "
        f"{settings.group_id!r} has committed offsets of its input ({', '.join(committed[:3])}): the model "
        "ran before and its snapshots are gone (was the model topic deleted?)"
    )
    if settings.on_bad_snapshot == "new-model":
        log.warning(
            "%s: starting a new model from the group's offsets (--on-bad-snapshot new-model)", problem
        )
        return True
    what = "there is no model to keep; " if settings.on_bad_snapshot == "keep-model" else ""
    raise SnapshotError(
        f"{problem}; {what}to start a new model from the group's offsets, run once with --on-bad-snapshot "
        "new-model (or use a --group-id of its own)"
    )


def settle_positions(
    settings: Settings,
    processor: Processor,
    input: Input,
    now: float,
    lag: LagSource,
    limits: OutputLimits,
) -> tuple[Processor, bool]:
    """Check the snapshot's positions against the input as it is now. Beyond a partition's end (the
    topic was deleted and created again) is the operator's choice: refuse, a new model, or keep the
    model and read those partitions from their beginning. Below a partition's start (retention deleted
    records never read) the input resumes at the start, with a warning."""
    if not processor.positions:
        return processor, False
    ranges = input.offset_ranges()
    beyond = {
        tp: position
        for tp, position in processor.positions.items()
        if tp not in ranges or position > ranges[tp][1]
    }
    for tp, position in processor.positions.items():
        if tp in ranges and position < ranges[tp][0]:
            log.warning(
                "%s:%d starts at %d, after the snapshot's position %d: records were deleted before they "
                "were read (retention); resuming at %d",
                *tp, ranges[tp][0], position, ranges[tp][0],
            )  # fmt: skip
    if not beyond:
        return processor, False
    (topic, partition), position = next(iter(beyond.items()))
    end = ranges.get((topic, partition), (0, 0))[1]
    choice = settings.on_bad_snapshot
    if choice == "refuse":
        raise SnapshotError(
            f"the snapshot of model {settings.model_name!r} resumes {topic}:{partition} at offset "
            f"{position}, beyond its end {end} (was the topic deleted and created again?): run once with "
            "--on-bad-snapshot keep-model to keep the model and read such partitions from their "
            "beginning, or --on-bad-snapshot new-model to start a new model"
        )
    if choice == "new-model":
        log.warning("the snapshot's positions lie beyond the input's end: starting a new model")
        fresh = Processor.restored(settings, None, now, lag, limits)
        input.seek(input.committed_positions())
        return fresh, True
    log.warning(
        "the snapshot's positions of %s lie beyond the input's end: keeping the model, reading them "
        "from their beginning (--on-bad-snapshot keep-model)",
        ", ".join(f"{t}:{p}" for t, p in beyond),
    )
    for tp in beyond:
        del processor.positions[tp]
    input.seek({tp: None for tp in beyond if tp in ranges})
    return processor, True


def rebuild_questions(settings: Settings, processor: Processor) -> None:
    """Delayed labels: the restored snapshot's pending questions read back from the input topic (their
    changelog), without scoring or learning again."""
    ranges = processor.questions_to_read() if processor.pending is not None else {}
    if not ranges:
        return
    started = time.monotonic()
    records = read_ranges(settings.connection, f"{settings.model_name}-questions", ranges)
    missing = processor.rebuild_questions(records)
    assert processor.pending is not None
    log.info(
        "rebuilt %d pending questions from %d input records in %.1f s",
        len(processor.pending), len(records), time.monotonic() - started,
    )  # fmt: skip
    if missing:
        log.warning(
            "%d pending questions could not be read back (their input records are gone: retention, or a "
            "recreated topic); their answers will have no question",
            missing,
        )
