"""The event contracts (JSON, UTF-8) as pydantic v2 models. No Kafka here.

The input model validates raw event values; the output models document (and in the tests, check)
what the component publishes. Field names are public contracts (the README's "Event contracts").
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AllowInfNan, BaseModel, ConfigDict, Field, Strict

FiniteNumber = Annotated[float, Strict(), AllowInfNan(False)]
"""A JSON number that is finite: no strings, no booleans, no NaN or Infinity."""

ERROR_REASON_HEADER = "stream_neuron.error.reason"
ERROR_CLASS_HEADER = "stream_neuron.error.class"
SOURCE_TOPIC_HEADER = "stream_neuron.source.topic"
SOURCE_PARTITION_HEADER = "stream_neuron.source.partition"
SOURCE_OFFSET_HEADER = "stream_neuron.source.offset"
ORIGINAL_BYTES_HEADER = "stream_neuron.error.original_bytes"
TRUNCATED_HEADER = "stream_neuron.error.truncated"
NULL_FIELDS_HEADER = "stream_neuron.error.null_fields"
"""On the dead letter of a record with neither key nor value (a keyless tombstone): Kafka clients
refuse to send such a record, so the dead letter's value is empty, and this header says so."""


class InputEvent(BaseModel):
    """One feature/label event. ``features`` by name (an object) or by position (an array); ``label``
    0/1 (true/false; -1/+1 for the perceptron) or absent/null for an event that is only scored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: Annotated[str, Strict()] | Annotated[int, Strict()] | None = None
    features: dict[str, FiniteNumber] | list[FiniteNumber]
    label: Annotated[bool, Strict()] | FiniteNumber | None = None
    ts: str | None = None


class SourceRef(BaseModel):
    topic: str
    partition: int
    offset: int


class Prediction(BaseModel):
    """Published for every valid event, scored with the weights from before it (or its batch)."""

    id: str | None
    prediction: int
    probability: float | None = Field(description="P(y=1); null for the perceptron")
    score: float = Field(description="the logit z = w.x + b")
    label: int | None
    model_version: int = Field(description="updates the scoring weights had seen")
    source: SourceRef
    candidate: int | None = Field(
        None, description="several --learning-rate candidates: the champion's index that scored it"
    )
    learning_rate: float | None = Field(None, description="with candidates: that candidate's learning rate")


class WindowMetrics(BaseModel):
    events: int
    log_loss: float | None
    accuracy: float | None


class CumulativeMetrics(BaseModel):
    log_loss: float | None
    accuracy: float | None


class LabelMetrics(BaseModel):
    """Delayed labels: questions waiting now, and cumulative counts of what became of them."""

    pending: int
    answered: int
    expired: int = Field(description="questions dropped unanswered (--label-window count or time)")
    unmatched_answers: int = Field(description="answers with no question (dead letters)")
    duplicate_answers: int = Field(description="answers to a question answered already (dead letters)")
    duplicate_questions: int = Field(description="questions whose id was pending already (scored, not kept)")


class CandidateMetrics(BaseModel):
    """One learning-rate candidate: its own prequential figures (its predictions, published or not)."""

    learning_rate: float
    optimizer: str
    window: CumulativeMetrics
    cumulative: CumulativeMetrics
    diverging: bool = Field(description="flagged diverging: it may not be champion while flagged")
    champion: bool


class DriftMetrics(BaseModel):
    """--drift-detector: its watch over the prequential errors (1 wrong, 0 right), in the order scored."""

    detector: str = Field(description="adwin or page-hinkley")
    events_since_last: int = Field(
        description="labelled events since the last detection (or since the start)"
    )
    count: int = Field(description="detections so far")


class Metrics(BaseModel):
    """Published every ``--metrics-every`` events or ``--metrics-interval-s`` seconds, and at shutdown.
    Losses and accuracies are prequential: each event was scored before it was learned from."""

    model_version: int
    events: int
    labelled: int
    dead_letters: int
    window: WindowMetrics
    cumulative: CumulativeMetrics
    learning_rate: float
    weight_norm: float | None = Field(description="|w|; null only if it exceeds a float64")
    weight_growth: float | None = Field(
        None, description="|w| over |w| at the previous metrics record (null for the first)"
    )
    diverging: bool = Field(
        False, description="the cost bounces while the weights keep growing: the learning rate is too large"
    )
    events_per_second: float
    lag: int | None
    ts: str
    labels: LabelMetrics | None = Field(None, description="delayed labels (--label-window) only")
    drift: DriftMetrics | None = Field(None, description="absent with --drift-detector none")
    candidates: list[CandidateMetrics] | None = Field(
        None, description="several --learning-rate candidates: each one's figures, in --learning-rate order"
    )
    champion: int | None = Field(None, description="with candidates: the index of the champion now")
    champion_changes: int | None = Field(None, description="with candidates: changes of champion so far")


class Snapshot(BaseModel):
    """The model and the input offsets it covers; key = model name on the compacted model topic."""

    model: str
    kind: str = Field(description="the model kind (stream_neuron.neuron.MODEL_KINDS)")
    version: int
    feature_names: list[str] | None
    n_features: int
    weights: list[float]
    bias: float
    learning_rate: float
    schedule_state: dict[str, object]
    scaler_state: dict[str, object] | None
    metrics_state: dict[str, float | int]
    pending: dict[str, object] | None = Field(description="mini-batch rows consumed but not yet learned")
    questions: dict[str, object] | None = Field(
        None,
        description="delayed labels: the questions still waiting for their answers (their input offsets "
        "and scores; the features are read back from the input topic) and the label counts",
    )
    offsets: dict[str, int] = Field(description='"topic:partition" -> next offset to read')
    ts: str
    candidates: list[dict[str, object]] | None = Field(
        None,
        description="several learning rates raced: every candidate's model, metrics state and diverging "
        "flag, in --learning-rate order (the top level is the champion's model)",
    )
    champion: dict[str, object] | None = Field(
        None, description="the champion rule's state: the champion, its window's running totals, streaks"
    )
    features: dict[str, object] | None = Field(
        None,
        description='--features open or hashed: {"mode": "open"} (the vocabulary is feature_names, in '
        'index order) or {"mode": "hashed", "bits", "seed", "in_use": a base64 bitmap of the buckets in use, '
        "little-endian bit order}; absent: fixed",
    )
    drift: dict[str, object] | None = Field(
        None,
        description='--drift-detector: {"name", "count", "since", "detector": its state (ADWIN\'s rows of '
        "buckets, or Page-Hinkley's sums)}; absent: none",
    )
    sparse: dict[str, object] | None = Field(
        None,
        description='open or hashed: the per-feature arrays where any is not 0 ("index": int32 indices or '
        '{"bits": bitmap}, null for all; "weights", the scaler\'s "counts", "mean", "var", the rule\'s '
        '"first", "second", "cum_l1"); weights is then []',
    )
