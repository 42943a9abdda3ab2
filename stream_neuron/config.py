"""The configuration of every command: one frozen pydantic-settings class a command (``run``'s here;
what every command shares in ``common_settings.py``; the others' in ``command_config.py``).

Sources, strongest first: command-line flags, ``STREAM_NEURON_*`` environment variables, a TOML
config file (``--config``, or ``STREAM_NEURON_CONFIG``), the defaults below. Field names are the flags
with ``-`` for ``_`` (``cli.py`` generates the flags from these classes), so a flag, its variable and
its config key are always the same name. One config file can serve every command: each takes the
keys it knows and leaves those of the other commands; a key or variable no command knows is an error
that names it (``command_config.check_sources``).

Delivery guarantees of ``run`` (``guarantee``):

- ``at-least-once`` (default): input offsets are committed only after every prediction, metric, dead
  letter and snapshot they cover is acknowledged by the broker (``acks=all``). A crash replays the
  uncommitted tail: predictions may repeat (they carry the event id), but the model is restored from
  its newest snapshot, which records the input offsets it covers, so each event trains it once.
  Cost: nothing beyond the acknowledgements.
- ``exactly-once``: each commit interval is one Kafka transaction holding the outputs, one model
  snapshot and the input offsets; readers with ``isolation_level=read_committed`` see every effect
  once. A second instance with the same ``model_name`` fences the first, which exits with status 3.
  Cost: a transaction per interval (latency up to ``commit_interval_ms``) and lower throughput.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    NoDecode,
)

from stream_neuron.common_settings import CommonSettings
from stream_neuron.drift_options import DriftOptions
from stream_neuron.feature_options import FeatureOptions
from stream_neuron.metrics_port_options import MetricsPortOptions
from stream_neuron.neuron import MODEL_KINDS, LinearNeuron
from stream_neuron.neuron.optimizers import OptimizerName, Rule
from stream_neuron.schema import check_names

DEFAULT_TOPICS = {
    "input_topic": "neuron-events",
    "predictions_topic": "neuron-predictions",
    "metrics_topic": "neuron-metrics",
    "dead_letter_topic": "neuron-dead-letters",
    "model_topic": "neuron-model",
}
DEFAULT_REQUESTS_TOPIC = "neuron-requests"

MODEL_CHOICES: list[Any] = list(MODEL_KINDS)
DEFAULT_RATES = ", ".join(f"{cls.default_learning_rate:g} ({kind})" for kind, cls in MODEL_KINDS.items())


def split_rates(value: Any) -> Any:
    """``0.1`` or ``"0.1,0.01"`` (a flag, a variable) as a tuple of rates; anything else as it came."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (float(value),)
    if isinstance(value, str):
        try:
            return tuple(float(part) for part in value.split(",") if part.strip())
        except ValueError:
            raise ValueError(f"not a list of numbers: {value!r}") from None
    return value


def check_rule(model: str, optimizer: OptimizerName, l2: float, l1: float) -> None:
    """``ValueError`` (naming the flags) for an optimizer and penalties the model does not take."""
    try:
        MODEL_KINDS[model].checked_rule(Rule(optimizer, l2, l1))
    except ValueError as error:
        raise ValueError(str(error).replace("l1 and l2", "--l1 and --l2")) from None


def known_model(kind: str) -> str:
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model {kind!r}: use {' or '.join(MODEL_CHOICES)}")
    return kind


def run_names(base: str) -> dict[str, str]:
    """Topics, consumer group and model name of one self-contained run (demos, benchmarks)."""
    return {
        "input_topic": f"{base}-events",
        "predictions_topic": f"{base}-predictions",
        "metrics_topic": f"{base}-metrics",
        "dead_letter_topic": f"{base}-dead-letters",
        "model_topic": f"{base}-model",
        "group_id": base,
        "model_name": base,
    }


class Settings(CommonSettings, FeatureOptions, DriftOptions, MetricsPortOptions):
    """``stream-neuron run``: learn from the input topic; publish predictions, metrics, snapshots."""

    input_topic: str = DEFAULT_TOPICS["input_topic"]
    predictions_topic: str = DEFAULT_TOPICS["predictions_topic"]
    metrics_topic: str = DEFAULT_TOPICS["metrics_topic"]
    dead_letter_topic: str = DEFAULT_TOPICS["dead_letter_topic"]
    model_topic: str = DEFAULT_TOPICS["model_topic"]
    group_id: str = "stream-neuron"
    model_name: str = "stream-neuron"

    model: str = Field("logistic", json_schema_extra={"choices": MODEL_CHOICES})
    feature_names: Annotated[tuple[str, ...] | None, NoDecode] = Field(
        None, description="feature order, comma separated; else fixed by the first valid event"
    )
    mode: Literal["sgd", "minibatch"] = "sgd"
    batch_size: int = Field(32, ge=1, le=100_000)
    linger_ms: int = Field(200, ge=0)
    learning_rate: Annotated[tuple[float, ...], NoDecode] = Field(
        (0.05,),
        description="the model's step size, or several (a,b,c): one candidate model each, raced on every "
        f"event, the champion's prediction published (default: {DEFAULT_RATES})",
        json_schema_extra={"default_in_description": True},
    )
    champion_window: int = Field(
        1000, ge=1, description="the champion: lowest log loss over this many labelled events (candidates)"
    )
    optimizer: Literal["sgd", "adagrad", "adam"] = Field(
        "sgd", description="the weights' optimizer, as river's optim.SGD, AdaGrad, Adam"
    )
    l2: float = Field(
        0.0, ge=0, allow_inf_nan=False, description="L2 penalty (river's LogisticRegression l2)"
    )
    l1: float = Field(0.0, ge=0, allow_inf_nan=False, description="L1 penalty (river's; not with --l2)")
    intercept_learning_rate: float | None = Field(
        None, ge=0, allow_inf_nan=False, description="the intercept's step size (default: --learning-rate)"
    )
    schedule: Literal["constant", "invscaling"] = Field(
        "constant", description="invscaling: lr / (t+1)^power after t updates (any model)"
    )
    schedule_power: float = Field(0.5, ge=0, allow_inf_nan=False)
    standardize: bool = False

    guarantee: Literal["at-least-once", "exactly-once"] = "at-least-once"
    commit_interval_ms: int | None = Field(
        None,
        ge=1,
        description="checkpoint at least this often; default 1000 (at-least-once), 100 (exactly-once)",
    )
    transaction_timeout_s: float = Field(
        30.0, gt=0, description="exactly-once: longest wait for a transaction call before abort and retry"
    )
    commit_every: int = Field(10_000, ge=1, description="checkpoint at least every N input records")
    metrics_every: int = Field(1000, ge=1, description="publish metrics every N events")
    metrics_interval_s: float = Field(10.0, gt=0, description="... or every T seconds, whichever first")
    snapshot_every: int = Field(10_000, ge=1, description="checkpoint (snapshot + commit) every N updates")
    snapshot_interval_s: float = Field(
        1.0,
        gt=0,
        description="... or every T seconds once the model changed (scorers swap to each snapshot)",
    )
    publish_predictions: bool = Field(
        True, description="publish predictions (off: scorer replicas serve them; the metrics stay)"
    )
    label_window: int = Field(
        0,
        ge=0,
        le=10_000_000,
        description="delayed labels: keep up to N questions (events without a label) until their answers "
        '({"id", "label"}) come, and learn then (default 0: off)',
    )
    label_window_s: float = Field(
        86_400.0, gt=0, description="... and for at most S seconds of stream time (record timestamps)"
    )
    labels_topic: str | None = Field(None, description="... answers read from this topic too")
    max_events: int | None = Field(None, ge=1, description="stop after N input records (bounded run)")
    idle_timeout_s: float | None = Field(None, gt=0, description="stop after S seconds without input")
    poll_max_records: int = Field(500, ge=1)
    max_partition_wait_ms: int = Field(
        100,
        ge=0,
        description="records of several partitions are learned in record-time order; a partition with "
        "none fetched that is not at its end is waited for this long (0: not at all)",
    )
    max_record_bytes: int = Field(1_000_000, ge=64, description="larger input records are dead-lettered")
    max_feature_abs: float | None = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        description="events with a feature beyond +/- this are dead-lettered (a sanity bound: one absurd "
        "value can otherwise swamp the weights or the scaler; default: none)",
    )
    connect_timeout_s: float = Field(10.0, gt=0, description="how long to wait for a broker at start-up")
    on_bad_snapshot: Literal["refuse", "new-model", "keep-model"] = Field(
        "refuse",
        description="when the newest snapshot is unusable (deleted, malformed, another model) or its offsets "
        "lie beyond the end of the input (a recreated topic): refuse to start (say why), start a new-model "
        "from the group's offsets, or keep-model and read those partitions from their beginning",
    )
    compression_type: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        "none", description="compression of the published records (input in any codec is read)"
    )
    create_topics: bool = True
    topic_partitions: int = Field(1, ge=1, description="partitions of output topics created when missing")

    @model_validator(mode="before")
    @classmethod
    def _default_rate_of_the_model(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("learning_rate") is None:
            kind = MODEL_KINDS.get(str(data.get("model", "logistic")))
            if kind is not None:
                return {**data, "learning_rate": kind.default_learning_rate}
        return data

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        return known_model(value)

    @field_validator("learning_rate", mode="before")
    @classmethod
    def _split_rates(cls, value: Any) -> Any:
        return split_rates(value)

    @field_validator("learning_rate")
    @classmethod
    def _usable_rates(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value or not all(math.isfinite(rate) and rate >= 0 for rate in value):
            raise ValueError("learning rates must be finite numbers >= 0")
        if len(set(value)) != len(value):
            raise ValueError("each learning rate once: two candidates with one rate learn the same model")
        return value

    @model_validator(mode="after")
    def _rule_of_the_model(self) -> Settings:
        check_rule(self.model, self.optimizer, self.l2, self.l1)
        self.check_feature_names(self.feature_names)
        return self

    @field_validator("feature_names", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            names = tuple(name.strip() for name in value.split(",") if name.strip())
            return names or None
        return value

    @field_validator("feature_names")
    @classmethod
    def _unique_names(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None:
            if len(set(value)) != len(value):
                raise ValueError("feature names must be unique")
            check_names(value)
        return value

    @model_validator(mode="after")
    def _distinct_topics(self) -> Settings:
        topics = [
            self.input_topic,
            self.predictions_topic,
            self.metrics_topic,
            self.dead_letter_topic,
            self.model_topic,
        ]
        if self.labels_topic is not None:
            topics.append(self.labels_topic)
            if not self.label_window:
                raise ValueError("--labels-topic needs --label-window (how many questions may wait)")
        if len(set(topics)) != len(topics):
            raise ValueError(f"the topics must be distinct, got {topics}")
        return self

    @property
    def delayed_labels(self) -> bool:
        return self.label_window > 0

    @property
    def input_topics(self) -> list[str]:
        """The topics the run reads: the input, and the labels topic when there is one."""
        return [self.input_topic] + ([self.labels_topic] if self.labels_topic else [])

    @property
    def commit_interval_s(self) -> float:
        if self.commit_interval_ms is not None:
            return self.commit_interval_ms / 1000
        return 0.1 if self.guarantee == "exactly-once" else 1.0

    def new_model(self, n_features: int, rate: float | None = None) -> LinearNeuron:
        """A new neuron of ``n_features`` as these settings describe it (the candidate of ``rate``; by
        default the first)."""
        rate = self.learning_rate[0] if rate is None else rate
        return MODEL_KINDS[self.model](
            n_features,
            rate,
            self.intercept_rate(rate),
            schedule=self.schedule,
            power=self.schedule_power,
            standardize=self.standardize,
            optimizer=self.optimizer,
            l2=self.l2,
            l1=self.l1,
            sparse=self.features != "fixed",
        )

    def intercept_rate(self, rate: float | None = None) -> float:
        """The intercept's rate of the candidate of ``rate`` (by default the first): its own rate,
        unless --intercept-learning-rate sets one for all."""
        rate = self.learning_rate[0] if rate is None else rate
        return rate if self.intercept_learning_rate is None else self.intercept_learning_rate
