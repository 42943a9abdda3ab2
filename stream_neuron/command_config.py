"""The settings of the commands besides ``run``: ``score``, ``fit``, ``produce``, ``monitor``,
``check-river`` (the sources and naming rules are ``config.py``'s), and the table ``cli.py`` builds
every command's flags from."""

from __future__ import annotations

import difflib
import math
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from stream_neuron.common_settings import CommonSettings
from stream_neuron.config import (
    DEFAULT_REQUESTS_TOPIC,
    DEFAULT_TOPICS,
    MODEL_CHOICES,
    Settings,
    check_rule,
    known_model,
    split_rates,
)
from stream_neuron.errors import OperatorError
from stream_neuron.feature_options import FeatureOptions
from stream_neuron.metrics_port_options import MetricsPortOptions


class ScoreSettings(CommonSettings, MetricsPortOptions):
    """``stream-neuron score``: a stateless scorer; replicas share a consumer group on the requests
    topic and follow the model topic, swapping to each new snapshot between polls. Never learns."""

    input_topic: str = Field(DEFAULT_REQUESTS_TOPIC, description="the requests to score")
    predictions_topic: str = DEFAULT_TOPICS["predictions_topic"]
    dead_letter_topic: str = DEFAULT_TOPICS["dead_letter_topic"]
    model_topic: str = DEFAULT_TOPICS["model_topic"]
    model_name: str = Field("stream-neuron", description="the model (trained by run) to score with")
    group_id: str = Field("stream-neuron-scorers", description="the consumer group the replicas share")
    wait_for_model: bool = Field(False, description="wait for a first snapshot instead of refusing to start")
    max_events: int | None = Field(None, ge=1, description="stop after N requests (bounded run)")
    idle_timeout_s: float | None = Field(None, gt=0, description="stop after S seconds without requests")
    commit_interval_ms: int = Field(
        1000, ge=1, description="commit offsets (after the predictions) this often"
    )
    poll_max_records: int = Field(500, ge=1)
    max_record_bytes: int = Field(1_000_000, ge=64, description="larger requests are dead-lettered")
    max_feature_abs: float | None = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        description="requests with a feature beyond +/- this are dead-lettered",
    )
    compression_type: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "none"
    connect_timeout_s: float = Field(10.0, gt=0, description="how long to wait for a broker at start-up")
    create_topics: bool = True
    topic_partitions: int = Field(1, ge=1, description="partitions of output topics created when missing")

    def scoring(
        self,
        kind: str,
        feature_names: tuple[str, ...] | None,
        standardize: bool,
        features: dict[str, Any] | None = None,
    ) -> Settings:
        """The run settings a scorer's processor works with, for a snapshot of this kind and schema
        (``features``: the snapshot's open or hashed feature settings)."""
        features = features or {}
        mode = features.get("mode", "fixed")
        hashing = {"hash_bits": features["bits"], "hash_seed": features["seed"]} if mode == "hashed" else {}
        named = {"max_feature_name_bytes": features["max_name_bytes"]} if "max_name_bytes" in features else {}
        return Settings(
            model=kind,
            feature_names=feature_names if mode == "fixed" else None,
            features=mode,
            **hashing,
            **named,
            standardize=standardize,
            predictions_topic=self.predictions_topic,
            dead_letter_topic=self.dead_letter_topic,
            model_topic=self.model_topic,
            model_name=self.model_name,
            input_topic=self.input_topic,
            max_record_bytes=self.max_record_bytes,
            max_feature_abs=self.max_feature_abs,
            poll_max_records=self.poll_max_records,
            metrics_topic=f"{self.model_name}.unused-metrics",
        )


class FitSettings(CommonSettings, FeatureOptions):
    """``stream-neuron fit``: batch (or mini-batch) gradient descent over a history (a topic, or a range
    of it, or a file); writes a snapshot that ``run`` continues from."""

    input_topic: str | None = Field(None, description="the history: a topic (all of it as it is now)")
    from_offset: int | None = Field(None, ge=0, description="... from this offset of every partition")
    to_offset: int | None = Field(None, ge=0, description="... up to (not including) this offset")
    from_time: str | None = Field(None, description="... from this time (ISO 8601, or epoch milliseconds)")
    to_time: str | None = Field(None, description="... up to this time")
    file: Path | None = Field(None, description="the history: a CSV (with --label-column) or JSON lines")
    label_column: str | None = Field(None, description="CSV: the label column")
    model_topic: str = DEFAULT_TOPICS["model_topic"]
    metrics_topic: str = DEFAULT_TOPICS["metrics_topic"]
    model_name: str = "stream-neuron"
    model: str = Field("logistic", json_schema_extra={"choices": MODEL_CHOICES})
    feature_names: Annotated[tuple[str, ...] | None, NoDecode] = Field(
        None, description="feature order, comma separated; else fixed by the first valid event"
    )
    epochs: int = Field(100, ge=1, description="passes over the whole set")
    batch_size: int | None = Field(
        None, ge=1, description="events per step (default: the whole set, batch gradient descent)"
    )
    learning_rate: Annotated[tuple[float, ...], NoDecode] = Field(
        (0.1,), description="the step size, or several (a,b,c) to compare: the best one's model is kept"
    )
    optimizer: Literal["sgd", "adagrad", "adam"] = Field(
        "sgd", description="the weights' optimizer (run's, river's), per step of the descent"
    )
    l2: float = Field(0.0, ge=0, allow_inf_nan=False, description="L2 penalty (run's, river's)")
    l1: float = Field(
        0.0, ge=0, allow_inf_nan=False, description="L1 penalty (run's, river's; not with --l2)"
    )
    keep_all: bool = Field(
        False,
        description="with several rates: hand every one to run as a candidate (run --learning-rate with the "
        "same rates), the best as the first champion",
    )
    standardize: bool = Field(False, description="scale by the whole set's mean and variance (run goes on)")
    tol: float | None = Field(None, gt=0, description="stop when the cost changes by less than this")
    seed: int = Field(0, description="the mini-batch reshuffle's seed")
    plot: Path | None = Field(None, description="draw the cost of every epoch (of every rate) into this PNG")
    replace: bool = Field(False, description="replace an existing model of --model-name")
    max_memory_mb: float = Field(4096, gt=0, description="the largest history (rows x features) to hold")
    max_record_bytes: int = Field(1_000_000, ge=64, description="larger records are bad records")
    max_feature_abs: float | None = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        description="events with a feature beyond +/- this are bad records (as run's)",
    )
    connect_timeout_s: float = Field(10.0, gt=0, description="how long to wait for a broker at start-up")

    @model_validator(mode="after")
    def _feature_names_only_fixed(self) -> FitSettings:
        self.check_feature_names(self.feature_names)
        return self

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        return known_model(value)

    @field_validator("feature_names", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        return Settings._split_names(value)

    @field_validator("learning_rate", mode="before")
    @classmethod
    def _split_rates(cls, value: Any) -> Any:
        return split_rates(value)

    @field_validator("learning_rate")
    @classmethod
    def _positive_rates(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value or not all(math.isfinite(rate) and rate > 0 for rate in value):
            raise ValueError("learning rates must be finite numbers > 0")
        if len(set(value)) != len(value):
            raise ValueError("each learning rate once")
        return value

    @model_validator(mode="after")
    def _rule_of_the_model(self) -> FitSettings:
        check_rule(self.model, self.optimizer, self.l2, self.l1)
        return self

    @model_validator(mode="after")
    def _one_history(self) -> FitSettings:
        if (self.input_topic is None) == (self.file is None):
            raise ValueError("give one history: --input-topic or --file")
        if self.file is not None and any(
            v is not None for v in (self.from_offset, self.to_offset, self.from_time, self.to_time)
        ):
            raise ValueError("--from-/--to- ranges apply to --input-topic")
        return self


class ProduceSettings(CommonSettings):
    """``stream-neuron produce``: load events into a topic (a demo feed, a backfill, a load test)."""

    topic: str = Field(DEFAULT_TOPICS["input_topic"], description="created when missing")
    partitions: int = Field(1, ge=1, description="partitions of the topic when it is created")
    dataset: Literal["phishing", "bananas", "synthetic"] | None = Field(
        None, description="river's Phishing or Bananas, or synthetic data"
    )
    file: Path | None = Field(None, description="CSV (with --label-column) or JSON lines (.jsonl)")
    label_column: str | None = Field(None, description="CSV: the label column (else no labels)")
    n: int = Field(10_000, ge=1, description="synthetic: number of events")
    features: int = Field(10, ge=1, description="synthetic: number of features")
    noise: float = Field(0.5, ge=0, allow_inf_nan=False, description="synthetic: label noise")
    drift_at: int | None = Field(None, ge=0, description="synthetic: concept drift at this event")
    rate: float | None = Field(
        None, gt=0, allow_inf_nan=False, description="events per second (default: as fast as possible)"
    )
    unlabelled_fraction: float = Field(0.0, ge=0, le=1, description="drop the label of this fraction")
    label_delay: int | None = Field(
        None,
        ge=0,
        description="send questions (no label) and answers ({id, label}), each answer N events after "
        "its question (river's stream.simulate_qa order)",
    )
    labels_topic: str | None = Field(None, description="... send the answers to this topic")
    seed: int = 0

    @model_validator(mode="after")
    def _one_source(self) -> ProduceSettings:
        if (self.dataset is None) == (self.file is None):
            raise ValueError("give one source: --dataset or --file")
        if self.labels_topic is not None and self.label_delay is None:
            raise ValueError("--labels-topic needs --label-delay")
        return self


class MonitorSettings(CommonSettings):
    """``stream-neuron monitor``: the metrics topic as a table, a live view or a learning-curve plot."""

    metrics_topic: str = DEFAULT_TOPICS["metrics_topic"]
    follow: bool = Field(False, description="a live view of each new metrics record")
    plot: Path | None = Field(None, description="draw the learning curve into this PNG")


class CheckRiverSettings(CommonSettings, FeatureOptions):
    """``stream-neuron check-river``: replay a dataset through this neuron and river; compare."""

    dataset: Literal["phishing", "bananas"] = "phishing"
    file: Path | None = Field(
        None, description='replay this JSON-lines file of {"features": {...}, "label"} instead of --dataset'
    )
    model: str = Field("logistic", json_schema_extra={"choices": MODEL_CHOICES})
    learning_rate: Annotated[tuple[float, ...] | None, NoDecode] = Field(
        None,
        description="a rate, or several (a,b,c) raced as candidates, each compared with river at its rate "
        "(default 0.01 (logistic), the model's own otherwise)",
    )
    optimizer: Literal["sgd", "adagrad", "adam"] = Field(
        "sgd", description="river's optim.SGD, AdaGrad, Adam"
    )
    l2: float = Field(0.0, ge=0, allow_inf_nan=False, description="L2 penalty (river's l2)")
    l1: float = Field(0.0, ge=0, allow_inf_nan=False, description="L1 penalty (river's l1; not with --l2)")
    standardize: bool = False
    delay: int | None = Field(
        None, ge=0, description="labels revealed N events after each question (progressive_val_score delay)"
    )

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
    def _positive_rates(cls, value: tuple[float, ...] | None) -> tuple[float, ...] | None:
        return None if value is None else FitSettings._positive_rates(value)

    @model_validator(mode="after")
    def _rule_of_the_model(self) -> CheckRiverSettings:
        check_rule(self.model, self.optimizer, self.l2, self.l1)
        return self


class TopicsSettings(CommonSettings):
    """``stream-neuron topics``: create the topics of a stack in one go (run's input and outputs, the
    scorers' requests, a labels topic), each as the commands need it (the model topic compacted, the
    dead letters sized for any input); topics that exist are left as they are."""

    input_topic: str = DEFAULT_TOPICS["input_topic"]
    predictions_topic: str = DEFAULT_TOPICS["predictions_topic"]
    metrics_topic: str = DEFAULT_TOPICS["metrics_topic"]
    dead_letter_topic: str = DEFAULT_TOPICS["dead_letter_topic"]
    model_topic: str = DEFAULT_TOPICS["model_topic"]
    requests_topic: str | None = Field(None, description="the scorers' requests topic (default: none)")
    requests_partitions: int = Field(4, ge=1, description="partitions of the requests topic")
    labels_topic: str | None = Field(None, description="a topic of answers (delayed labels)")
    topic_partitions: int = Field(1, ge=1, description="partitions of the other topics")
    connect_timeout_s: float = Field(60.0, gt=0, description="how long to wait for a broker")

    @field_validator("requests_topic", "labels_topic", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value


COMMAND_SETTINGS: dict[str, type[CommonSettings]] = {
    "run": Settings,
    "score": ScoreSettings,
    "produce": ProduceSettings,
    "monitor": MonitorSettings,
    "check-river": CheckRiverSettings,
    "fit": FitSettings,
    "topics": TopicsSettings,
}


ENV_PREFIX = "STREAM_NEURON_"
# Variables of the prefix that are not settings: the config file, the kernel choice, the tests' crash
# points; and any holding a password (``--sasl-password-env`` names one of the operator's choosing).
OTHER_VARIABLES = frozenset({"CONFIG", "KERNEL", "TEST_CRASH_AT", "TEST_CRASH_ON"})


class UnknownSettingError(OperatorError):
    """A config-file key or environment variable that no command knows (a misspelling, say)."""

    exit_code = 2


def known_settings() -> set[str]:
    return {name for cls in COMMAND_SETTINGS.values() for name in cls.model_fields}


def _nearest(name: str, known: set[str]) -> str | None:
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return close[0] if close else None


def check_sources(config: Path | None, environ: Mapping[str, str] = os.environ) -> None:
    """Every key of the config file and every ``STREAM_NEURON_*`` variable is a setting of some command;
    :class:`UnknownSettingError` names the first that is not, and the nearest known one. A setting that
    silently does not apply is worse than a refusal."""
    known = known_settings()
    for variable in sorted(environ):
        if not variable.startswith(ENV_PREFIX):
            continue
        name = variable.removeprefix(ENV_PREFIX)
        if name in OTHER_VARIABLES or "PASSWORD" in name or name.lower() in known:
            continue
        near = _nearest(name.lower(), known)
        hint = f" (did you mean {ENV_PREFIX}{near.upper()}?)" if near else ""
        raise UnknownSettingError(f"environment variable {variable} is not a setting of any command{hint}")
    if config is None or not config.is_file():
        return  # a missing file is the settings' own error
    try:
        keys = tomllib.loads(config.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise UnknownSettingError(f"config file {config} is not valid TOML: {error}") from None
    for key in keys:
        if key not in known:
            near = _nearest(key, known)
            hint = f" (did you mean {near!r}?)" if near else ""
            raise UnknownSettingError(f"config file {config}: {key!r} is not a setting of any command{hint}")
