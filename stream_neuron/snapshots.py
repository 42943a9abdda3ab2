"""Model snapshots as plain JSON-able dicts (the model topic's contract), and their checks.

A snapshot read back at a start or a rollback is checked whole before anything is built from it: its
shape against the contract (``contracts.Snapshot``), every number finite, the lengths consistent, the
offsets non-negative, and the model it describes against the settings. A snapshot that fails ends
the start with one line (:class:`SnapshotError`) that names the operator's choice
(``--on-bad-snapshot``); it is never silently replaced.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from pydantic import ValidationError

from stream_neuron.config import Settings
from stream_neuron.contracts import Snapshot
from stream_neuron.errors import OperatorError
from stream_neuron.feature_values import FeatureBudget
from stream_neuron.neuron import LinearNeuron
from stream_neuron.neuron.optimizers import Rule
from stream_neuron.neuron.sparse_state import PackedText
from stream_neuron.pending import BYTES_PER_PENDING_IN_SNAPSHOT, Question
from stream_neuron.records import EventRef
from stream_neuron.schema import name_problem

# JSON of one float64 (repr: up to 24 characters) and its separator.
BYTES_PER_NUMBER = 26
SNAPSHOT_FIXED_BYTES = 4096
NEW_MODEL_HINT = "to start a new model under this name, run once with --on-bad-snapshot new-model"


# Packed arrays shorter than this go through json.dumps like any text.
_COPIED_WHOLE_FROM = 4096


def snapshot_json(state: dict[str, Any]) -> bytes:
    """``state`` as JSON bytes (``allow_nan=False``), its packed arrays copied in whole. json.dumps
    scans every character of a string for escapes: 10 ms for a 2^20-bucket model's 5 MB of base64,
    where no character needs one. Each long :class:`PackedText` is swapped for a token no other
    text can hold (a fresh uuid), and the token's JSON string for the text afterwards."""
    blobs: list[bytes] = []
    token = f"packed-{uuid.uuid4().hex}-"

    def swapped(value: Any) -> Any:
        if type(value) is PackedText and len(value) >= _COPIED_WHOLE_FROM:
            blobs.append(value.raw)
            return f"{token}{len(blobs) - 1}"
        if type(value) is dict:
            return {key: swapped(item) for key, item in value.items()}
        if type(value) is list and value and type(value[0]) in (dict, list):
            return [swapped(item) for item in value]
        return value

    text = json.dumps(swapped(state), allow_nan=False).encode()
    if not blobs:
        return text
    first, *rest = text.split(token.encode())  # each part after a token starts with its number
    parts = [first]
    for part in rest:
        number, after = part.split(b'"', 1)
        parts += (blobs[int(number)], b'"', after)
    return b"".join(parts)  # one copy of the megabytes, where a substitution made two


class SnapshotError(OperatorError):
    """A snapshot that cannot continue under the current settings (a startup error)."""


def snapshot_bytes_bound(
    n_features: int,
    names: Sequence[str] | None,
    standardize: bool,
    pending_rows: int,
    model_name: str,
    questions: int = 0,
    candidates: int = 1,
    rule_vectors: int = 0,
    champion_window: int = 0,
) -> int:
    """An upper bound of a snapshot's size: weights, the scaler's two vectors and the update rule's
    (an optimizer's moments, an L1 total), for each candidate and once more for the champion at the top,
    pending mini-batch rows (and their references), the feature names, the pending questions of delayed
    labels (a score per candidate each), the champion rule's running totals."""
    copies = 1 if candidates == 1 else candidates + 1
    numbers = n_features * (copies * (1 + 2 * standardize + rule_vectors) + pending_rows)
    if candidates > 1:
        numbers += candidates * (champion_window + 1) + questions * candidates
    name_bytes = sum(len(json.dumps(name)) + 2 for name in names) if names else 0
    return (
        SNAPSHOT_FIXED_BYTES * copies
        + numbers * BYTES_PER_NUMBER
        + name_bytes
        + pending_rows * 600
        + 6 * len(model_name)
        + questions * BYTES_PER_PENDING_IN_SNAPSHOT
    )


def snapshot_fit_problem(
    settings: Settings, n_features: int, names: Sequence[str] | None, limit: int
) -> str | None:
    """Why snapshots of a model of ``n_features`` could outgrow the model topic's ``limit``, or ``None``."""
    pending = settings.batch_size if settings.mode == "minibatch" else 0
    rule_vectors = {"sgd": 0, "adagrad": 1, "adam": 2}[settings.optimizer] + (1 if settings.l1 else 0)
    bound = snapshot_bytes_bound(
        n_features, names, settings.standardize, pending, settings.model_name, settings.label_window,
        len(settings.learning_rate), rule_vectors, settings.champion_window,
    )  # fmt: skip
    if bound <= limit:
        return None
    model = f"a model of {n_features} features" if n_features else "a model of any number of features"
    return (
        f"{model} would make snapshots of up to {bound:,} bytes, over "
        f"the model topic's max.message.bytes of {limit:,}: raise that topic setting"
        + (" or use a smaller --batch-size" if pending else "")
        + (" or a smaller --label-window" if settings.label_window else "")
    )


BYTES_PER_PENDING_ENTRY = 40  # a mini-batch row's [index, value, scaled] of one feature, in JSON


def sparse_feature_budget(settings: Settings, limit: int) -> FeatureBudget:
    """What open or hashed features may take of a snapshot: the model topic's ``limit`` less what
    the rest of a snapshot may hold (a quarter of the rest kept for a mini-batch's pending rows), at
    the bytes one feature costs in every copy of the model (its packed numbers and index, in base64).
    Hashed buckets are bounded by the hash alone when every bucket of every array fits; an open
    vocabulary by ``--max-features`` too, and its names' JSON."""
    rule_vectors = {"sgd": 0, "adagrad": 1, "adam": 2}[settings.optimizer] + (1 if settings.l1 else 0)
    candidates = len(settings.learning_rate)
    copies = 1 if candidates == 1 else candidates + 1
    fixed = snapshot_bytes_bound(
        0, None, settings.standardize, 0, settings.model_name, settings.label_window, candidates,
        rule_vectors, settings.champion_window,
    )  # fmt: skip
    room = max(limit - fixed, 0)
    if settings.mode == "minibatch":
        room -= pending_entries_room(settings, limit) * BYTES_PER_PENDING_ENTRY
    arrays = 1 + 3 * settings.standardize + rule_vectors
    per_feature = math.ceil((8 * arrays + 4) * copies * 4 / 3)
    if settings.features == "hashed":
        buckets = 1 << settings.hash_bits
        room -= math.ceil(buckets / 8 * 4 / 3)  # the bitmap of the buckets in use
        if math.ceil(8 * arrays * copies * buckets * 4 / 3) <= room:
            return FeatureBudget(buckets)
        return FeatureBudget(buckets, max(room, 0), per_feature)
    return FeatureBudget(settings.max_features, max(room, 0), per_feature)


def pending_entries_room(settings: Settings, limit: int) -> int:
    """How many feature values a mini-batch of open or hashed features may hold while it waits: a
    batch closes early when its rows hold more (a snapshot holds them)."""
    return max(limit // 4 // BYTES_PER_PENDING_ENTRY, 1)


def ref_to_json(source: EventRef) -> list[Any]:
    ref = [
        source.topic,
        source.partition,
        source.offset,
        None if source.key is None else source.key.hex(),
        source.event_id,
    ]
    return ref if source.asked is None else [*ref, source.asked.score]


def ref_from_json(value: list[Any]) -> EventRef:
    """A pending mini-batch row's reference; an answer's carries its question's score (a sixth item)."""
    topic, partition, offset, key, event_id, *asked = value
    question = None
    if asked:
        score = float(asked[0])
        if not math.isfinite(score):
            raise ValueError(f"a pending answer's score must be finite, got {asked[0]!r}")
        question = Question(topic, int(partition), int(offset), -1, np.empty(0), score)
    return EventRef(
        topic,
        int(partition),
        int(offset),
        None if key is None else bytes.fromhex(key),
        event_id,
        None,
        question,
    )


def offsets_json(positions: dict[tuple[str, int], int]) -> dict[str, int]:
    return {f"{topic}:{partition}": offset for (topic, partition), offset in sorted(positions.items())}


def now_ts() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_snapshot(
    model_name: str,
    model: LinearNeuron,
    feature_names: tuple[str, ...] | None,
    metrics_state: dict[str, float | int],
    pending: dict[str, Any] | None,
    positions: dict[tuple[str, int], int],
    questions: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The snapshot contract. ``pending``: mini-batch rows not yet learned; ``questions``: the pending
    questions of delayed labels (which input records, their scores: :meth:`PendingStore.state`)."""
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
            **({k: state[k] for k in ("rule", "rule_state")} if "rule" in state else {}),
        },
        "scaler_state": state["scaler"],
        **({"sparse": state["sparse"]} if "sparse" in state else {}),
        "metrics_state": metrics_state,
        "pending": pending,
        **({"questions": questions} if questions is not None else {}),
        "offsets": offsets_json(positions),
        "ts": now_ts(),
    }


def unfixed_snapshot(
    model_name: str, kind: str, learning_rate: float, positions: dict[tuple[str, int], int]
) -> dict[str, Any]:
    """The snapshot of a model whose features no valid event has fixed yet (``n_features`` 0, no
    weights): written when the operator starts a new model (``--on-bad-snapshot new-model``), so the
    choice holds at the next start even if no event came meanwhile."""
    return {
        "model": model_name, "kind": kind, "version": 0, "feature_names": None, "n_features": 0,
        "weights": [], "bias": 0.0, "learning_rate": learning_rate, "schedule_state": {"n_updates": 0},
        "scaler_state": None, "metrics_state": {}, "pending": None,
        "offsets": offsets_json(positions), "ts": now_ts(),
    }  # fmt: skip


def snapshot_positions(snapshot: dict[str, Any]) -> dict[tuple[str, int], int]:
    """The input positions a snapshot covers, by (topic, partition)."""
    positions = {}
    for topic_partition, offset in snapshot["offsets"].items():
        topic, _, partition = topic_partition.rpartition(":")
        positions[(topic, int(partition))] = int(offset)
    return positions


def neuron_state(snapshot: dict[str, Any], settings: Settings, rate: float | None = None) -> dict[str, Any]:
    """The neuron's state from a snapshot's contract fields. The learning-rate schedule and the update
    rule come from the settings (the operator's current intent: ``rate``, by default the first); the
    update count, which drives them, and the rule's state (an optimizer's moments) from the snapshot,
    when it was kept by the same rule."""
    schedule_state = snapshot["schedule_state"]
    rate = settings.learning_rate[0] if rate is None else rate
    schedule = {"name": settings.schedule, "learning_rate": rate, "power": settings.schedule_power}
    intercept = dict(schedule, learning_rate=settings.intercept_rate(rate))
    rule = Rule(settings.optimizer, settings.l2, settings.l1)
    kept = schedule_state.get("rule_state") if Rule.from_dict(schedule_state.get("rule")) == rule else None
    return {
        "kind": snapshot["kind"],
        "n_features": snapshot["n_features"],
        "weights": snapshot["weights"],
        "bias": snapshot["bias"],
        "n_updates": schedule_state["n_updates"],
        "schedule": schedule,
        "intercept_schedule": intercept,
        "scaler": snapshot["scaler_state"],
        **({"sparse": snapshot["sparse"]} if snapshot.get("sparse") is not None else {}),
        "rule": rule.to_dict(),
        "rule_state": kept,
    }


MAX_OFFSET = 2**63  # Kafka offsets are signed 64-bit


def _finite(values: Any) -> bool:
    return all(isinstance(v, int | float) and math.isfinite(v) for v in values)


def _shape_problem(raw: Any) -> tuple[str | None, dict[str, Any]]:
    """What makes ``raw`` unusable as a snapshot (``None`` when it is sound), and its contract form."""
    if not isinstance(raw, dict):
        return f"it is not a JSON object but {type(raw).__name__}", {}
    try:
        snapshot = Snapshot.model_validate(raw).model_dump()
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "snapshot"
        return f"{where}: {first['msg']}", {}
    return _value_problem(snapshot), snapshot


def _scaler_problem(state: dict[str, Any], n: int) -> str | None:
    count, mean, var = state.get("count"), state.get("mean"), state.get("var")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        return "its count is not a count"
    if not isinstance(mean, list) or not isinstance(var, list) or len(mean) != n or len(var) != n:
        return f"its mean and var are not two lists of {n} numbers"
    if not _finite([*mean, *var]) or min(var, default=0) < 0:
        return "its mean and var are not finite (or a variance is negative)"
    return None


def _value_problem(snapshot: dict[str, Any]) -> str | None:
    n = snapshot["n_features"]
    if snapshot.get("sparse") is not None:  # open or hashed: the arrays are checked as they load
        if n < 0 or snapshot["weights"]:
            return "a sparse model's weights must be in its sparse arrays only"
    elif n < 0 or len(snapshot["weights"]) != n:
        return f"it has {len(snapshot['weights'])} weights for {n} features"
    if not _finite([*snapshot["weights"], snapshot["bias"], snapshot["learning_rate"]]):
        return "its weights, bias or learning rate are not all finite numbers"
    names = snapshot["feature_names"]
    if names is not None and (len(names) != n or len(set(names)) != n or any(map(name_problem, names))):
        return "its feature names do not name its features once each"
    offsets = snapshot["offsets"]
    for topic_partition, offset in offsets.items():
        topic, _, partition = topic_partition.rpartition(":")
        if not topic or not partition.isdigit() or not 0 <= offset < MAX_OFFSET or int(partition) >= 2**31:
            return (
                f"its offset {topic_partition!r}: {offset} is not a topic:partition and a position "
                "from 0 to 2^63 - 1"
            )
    scaler = snapshot["scaler_state"]
    if scaler is not None and _scaler_problem(scaler, n):
        return f"its scaler_state is not a scaler's state: {_scaler_problem(scaler, n)}"
    updates = snapshot["schedule_state"].get("n_updates")
    if not isinstance(updates, int) or isinstance(updates, bool) or updates < 0:
        return "its update count (schedule_state.n_updates) is not a count"
    return None


def standardized(snapshot: dict[str, Any]) -> bool:
    """Whether the snapshot's model has a scaler (a sparse model's keeps a count per feature, in its
    sparse arrays)."""
    return snapshot.get("scaler_state") is not None or "counts" in (snapshot.get("sparse") or {})


def _hashing_differs(features: dict[str, Any], settings: Settings) -> bool:
    return (features.get("bits"), features.get("seed")) != (settings.hash_bits, settings.hash_seed)


def check_snapshot(raw: Any, settings: Settings) -> dict[str, Any]:
    """The snapshot with its values in their contract types; :class:`SnapshotError` (one line naming
    the way out) for one that is not a snapshot, or whose model differs from what the settings ask."""
    name = settings.model_name
    problem, snapshot = _shape_problem(raw)
    if problem is not None:
        raise SnapshotError(f"the newest snapshot of model {name!r} is unusable: {problem}; {NEW_MODEL_HINT}")
    if snapshot["kind"] != settings.model:
        raise SnapshotError(
            f"snapshot of model {name!r} is a {snapshot['kind']} model but --model is {settings.model}: "
            f"use another --model-name or the same --model ({NEW_MODEL_HINT})"
        )
    mode = (snapshot.get("features") or {}).get("mode", "fixed")
    if mode != settings.features or (mode == "hashed" and _hashing_differs(snapshot["features"], settings)):
        given = "" if mode != "hashed" else f" (--hash-bits {snapshot['features'].get('bits')}, --hash-seed "
        given += "" if mode != "hashed" else f"{snapshot['features'].get('seed')})"
        raise SnapshotError(
            f"snapshot of model {name!r} was trained with --features {mode}{given}: keep those settings or "
            f"use another --model-name ({NEW_MODEL_HINT})"
        )
    if snapshot["n_features"] == 0 and mode == "fixed":  # features not fixed yet: nothing to differ
        return snapshot
    names = snapshot["feature_names"]
    if settings.feature_names is not None and names is not None and tuple(names) != settings.feature_names:
        raise SnapshotError(
            f"snapshot of model {name!r} has features {names}, but --feature-names says "
            f"{list(settings.feature_names)}: use another --model-name ({NEW_MODEL_HINT})"
        )
    if settings.feature_names is not None and names is None:
        raise SnapshotError(
            f"snapshot of model {name!r} has positional features (its first event was an array), but "
            "--feature-names names them: use another --model-name, or drop --feature-names"
        )
    scaled = standardized(snapshot)
    if scaled != settings.standardize:
        raise SnapshotError(
            f"snapshot of model {name!r} was trained {'with' if scaled else 'without'} "
            f"--standardize: keep that setting or use another --model-name ({NEW_MODEL_HINT})"
        )
    return snapshot
