"""Model snapshots as plain JSON-able dicts (the model topic's contract), and their checks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from stream_neuron.config import Settings
from stream_neuron.errors import OperatorError
from stream_neuron.neuron import LinearNeuron
from stream_neuron.records import EventRef


class SnapshotError(OperatorError):
    """A snapshot that cannot continue under the current settings (a startup error)."""


def ref_to_json(source: EventRef) -> list[Any]:
    return [
        source.topic,
        source.partition,
        source.offset,
        None if source.key is None else source.key.hex(),
        source.event_id,
    ]


def ref_from_json(value: list[Any]) -> EventRef:
    topic, partition, offset, key, event_id = value
    return EventRef(topic, int(partition), int(offset), None if key is None else bytes.fromhex(key), event_id)


def build_snapshot(
    model_name: str,
    model: LinearNeuron,
    feature_names: tuple[str, ...] | None,
    metrics_state: dict[str, float | int],
    pending: dict[str, Any] | None,
    positions: dict[tuple[str, int], int],
) -> dict[str, Any]:
    state = model.to_dict()
    if pending is not None:
        pending = dict(pending, refs=[ref_to_json(ref) for ref in pending["refs"]])
    return {
        "model": model_name,
        "kind": model.kind,
        "version": model.n_updates,
        "feature_names": list(feature_names) if feature_names is not None else None,
        "n_features": model.n_features,
        "weights": state["weights"],
        "bias": state["bias"],
        "learning_rate": model.learning_rate,
        "schedule_state": {
            "schedule": state["schedule"],
            "intercept_schedule": state["intercept_schedule"],
            "n_updates": state["n_updates"],
        },
        "scaler_state": state["scaler"],
        "metrics_state": metrics_state,
        "pending": pending,
        "offsets": {
            f"{topic}:{partition}": offset for (topic, partition), offset in sorted(positions.items())
        },
        "ts": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }


def snapshot_positions(snapshot: dict[str, Any]) -> dict[tuple[str, int], int]:
    """The input positions a snapshot covers, by (topic, partition)."""
    positions = {}
    for topic_partition, offset in snapshot["offsets"].items():
        topic, _, partition = topic_partition.rpartition(":")
        positions[(topic, int(partition))] = int(offset)
    return positions


def neuron_state(snapshot: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The neuron's state from a snapshot's contract fields. The learning-rate schedule comes from the
    settings (the operator's current intent); the update count, which drives it, from the snapshot."""
    schedule_state = snapshot["schedule_state"]
    schedule = {
        "name": settings.schedule,
        "learning_rate": settings.learning_rate,
        "power": settings.schedule_power,
    }
    intercept = dict(schedule, learning_rate=settings.intercept_rate)
    return {
        "kind": snapshot["kind"],
        "n_features": snapshot["n_features"],
        "weights": snapshot["weights"],
        "bias": snapshot["bias"],
        "n_updates": schedule_state["n_updates"],
        "schedule": schedule,
        "intercept_schedule": intercept,
        "scaler": snapshot["scaler_state"],
    }


def check_snapshot(snapshot: dict[str, Any], settings: Settings) -> None:
    """Refuse to continue a snapshot whose model differs from what the settings ask for."""
    name = snapshot.get("model")
    if snapshot.get("kind") != settings.model:
        raise SnapshotError(
            f"snapshot of model {name!r} is a {snapshot.get('kind')} model but --model is {settings.model}: "
            "use another --model-name or the same --model"
        )
    names = snapshot.get("feature_names")
    if settings.feature_names is not None and names is not None and tuple(names) != settings.feature_names:
        raise SnapshotError(
            f"snapshot of model {name!r} has features {names}, but --feature-names says "
            f"{list(settings.feature_names)}: use another --model-name"
        )
    if settings.feature_names is not None and names is None:
        raise SnapshotError(
            f"snapshot of model {name!r} has positional features (its first event was an array), but "
            "--feature-names names them: use another --model-name, or drop --feature-names"
        )
    if (snapshot.get("scaler_state") is not None) != settings.standardize:
        raise SnapshotError(
            f"snapshot of model {name!r} was trained {'with' if snapshot.get('scaler_state') else 'without'} "
            "--standardize: keep that setting or use another --model-name"
        )
