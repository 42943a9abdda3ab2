"""The ``stream-neuron`` command line: thin glue over the layers, one subcommand a job.

Every command's flags are generated from its settings class (``config.py``, ``command_config.py``),
so flags, environment variables (``STREAM_NEURON_*``) and config-file keys are always the same names.
An operator error (a bad flag, no broker, a missing topic or file) ends in one line on stderr and a
non-zero status.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic.fields import FieldInfo

from stream_neuron import __version__
from stream_neuron.command_config import (
    COMMAND_SETTINGS,
    CheckRiverSettings,
    FitSettings,
    MonitorSettings,
    ProduceSettings,
    ScoreSettings,
    TopicsSettings,
    UnknownSettingError,
    check_sources,
)
from stream_neuron.common_settings import CommonSettings
from stream_neuron.config import Settings
from stream_neuron.errors import OperatorError
from stream_neuron.kafka_io import client_log
from stream_neuron.kafka_io.ports import KafkaIOError, StartupError, TakenOverError

EXIT_USAGE = 2

SettingsT = typing.TypeVar("SettingsT", bound=CommonSettings)


def _choices(field: FieldInfo) -> list[Any] | None:
    extra = field.json_schema_extra
    if isinstance(extra, dict) and "choices" in extra:
        return list(extra["choices"])  # type: ignore[arg-type]
    annotation = field.annotation
    for candidate in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(candidate) is typing.Literal:
            return list(typing.get_args(candidate))
    return None


def add_settings_flags(parser: argparse.ArgumentParser, settings_class: type[CommonSettings]) -> None:
    """One flag per field of ``settings_class``; an absent flag leaves the field to the environment,
    the config file or its default."""
    for name, field in settings_class.model_fields.items():
        flag = "--" + name.replace("_", "-")
        choices = _choices(field)
        help_text = field.description or ""
        extra = field.json_schema_extra
        default_described = isinstance(extra, dict) and extra.get("default_in_description")
        is_bool = field.annotation is bool
        if field.default is not None and not is_bool and not default_described:
            shown = ",".join(map(str, field.default)) if isinstance(field.default, tuple) else field.default
            help_text = f"{help_text} (default: {shown})".strip()
        if is_bool:
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text
            )
        else:
            parser.add_argument(
                flag,
                default=argparse.SUPPRESS,
                choices=choices,
                help=help_text,
                metavar=None if choices else name.upper(),
            )


def settings_from_args(args: argparse.Namespace, settings_class: type[SettingsT]) -> SettingsT:
    given = {name: getattr(args, name) for name in settings_class.model_fields if hasattr(args, name)}
    return settings_class(**given)


class OneLineParser(argparse.ArgumentParser):
    """A usage error is one line (what is wrong, and where help is), not argparse's usage block."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="stream-neuron",
        description="An online-learning logistic neuron (or perceptron) on a Kafka stream.",
    )
    parser.add_argument("--version", action="version", version=f"stream-neuron {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for command, settings_class in COMMAND_SETTINGS.items():
        doc = (settings_class.__doc__ or "").split(":", 1)[-1].strip()
        add_settings_flags(commands.add_parser(command, help=doc, description=doc), settings_class)
    return parser


def _stopped(error: KafkaIOError, what: str) -> OperatorError:
    """A Kafka failure after start-up, as the one line a command ends with: ``what`` happens next."""
    if isinstance(error, StartupError | TakenOverError):
        return error
    return OperatorError(f"stopped: {error} ({what})")


def _run(settings: Settings) -> int:
    from stream_neuron.runner import StopFlag, run

    stop = StopFlag()
    stop.install()
    try:
        run(settings, stop)
    except KafkaIOError as error:
        raise _stopped(
            error, "nothing after the last checkpoint was committed; a restart resumes there"
        ) from None
    return 0


def _score(settings: ScoreSettings) -> int:
    from stream_neuron.runner import StopFlag
    from stream_neuron.scorer import score

    stop = StopFlag()
    stop.install()
    try:
        score(settings, stop)
    except KafkaIOError as error:
        raise _stopped(error, "requests since the last commit are scored again") from None
    return 0


def _fit(settings: FitSettings) -> int:
    from stream_neuron.fit import fit

    try:
        fit(settings)
    except KafkaIOError as error:
        raise _stopped(error, "no snapshot was written") from None
    return 0


def _produce(settings: ProduceSettings) -> int:
    from stream_neuron.kafka_io.admin import TopicNeed, ensure_topics
    from stream_neuron.kafka_io.ports import TopicSpec
    from stream_neuron.kafka_io.probe import probe
    from stream_neuron.tools import sources
    from stream_neuron.tools.produce import produce_events

    events: typing.Iterable[Any]
    total: int | None = None
    if settings.dataset == "synthetic":
        events = sources.synthetic(
            settings.n, settings.features, settings.noise, settings.drift_at, settings.seed
        )
        total = settings.n
    elif settings.dataset is not None:
        events = sources.river_dataset(settings.dataset)
        total = sources.DATASET_SIZES[settings.dataset]
    else:
        assert settings.file is not None
        events = sources.events_file(settings.file, settings.label_column)
    connection = settings.connection
    probe(connection)
    topic = TopicNeed(
        settings.topic, "topic", ("WRITE", "DESCRIBE"), TopicSpec(settings.topic, settings.partitions)
    )
    needs = [topic]
    if settings.labels_topic:
        labels = settings.labels_topic
        needs.append(
            TopicNeed(labels, "labels topic", ("WRITE", "DESCRIBE"), TopicSpec(labels, settings.partitions))
        )
    ensure_topics(connection, "stream-neuron-produce", needs)
    summary = produce_events(
        connection,
        settings.topic,
        events,
        settings.rate,
        settings.unlabelled_fraction,
        settings.seed,
        progress=True,
        total=None if total is None or settings.label_delay is not None else total,
        label_delay=settings.label_delay,
        labels_topic=settings.labels_topic,
    )
    rate = summary.sent / summary.seconds if summary.seconds else 0.0
    answers = f"{summary.answers:,} answers, " if settings.label_delay is not None else ""
    print(
        f"sent {summary.sent:,} events to {settings.topic} ({answers}{summary.unlabelled:,} unlabelled, "
        f"{summary.bad_rows:,} bad rows skipped) in {summary.seconds:.1f} s ({rate:,.0f}/s)"
    )
    return 0


def _monitor(settings: MonitorSettings) -> int:
    from stream_neuron.kafka_io.admin import TopicNeed, ensure_topics
    from stream_neuron.kafka_io.probe import probe
    from stream_neuron.tools.metrics_view import Malformed
    from stream_neuron.tools.monitor import follow_metrics, format_metrics, read_metrics

    connection = settings.connection
    probe(connection)
    ensure_topics(
        connection,
        "stream-neuron-monitor",
        [
            TopicNeed(
                settings.metrics_topic,
                "metrics topic",
                ("READ", "DESCRIBE"),
                None,
                "is --metrics-topic right?",
            )
        ],
    )
    if settings.follow:
        from stream_neuron.tools.live import follow

        try:
            follow(follow_metrics(connection, settings.metrics_topic))
        except KeyboardInterrupt:
            return 0
        return 0
    records = read_metrics(connection, settings.metrics_topic)
    if not records:
        print(f"no metrics on {settings.metrics_topic} yet")
        return 0
    good = [record for record in records if not isinstance(record, Malformed)]
    if len(good) < len(records):
        print(
            f"{len(records) - len(good)} of {len(records)} records on {settings.metrics_topic} are malformed"
        )
    if good:
        print(format_metrics(good[-1]))
    if settings.plot is not None:
        from stream_neuron.tools.curve import draw, learning_curve

        curve = learning_curve(records)
        draw(curve, settings.plot, title=f"learning curve: {settings.metrics_topic}")
        print(f"learning curve of {len(curve.events)} metrics windows drawn to {settings.plot}")
    return 0


def _check_river(settings: CheckRiverSettings) -> int:
    from stream_neuron.feature_options import FeatureOptions
    from stream_neuron.neuron.optimizers import Rule
    from stream_neuron.tools.check_river import WEIGHT_TOLERANCE, compare

    rule = Rule(settings.optimizer, settings.l2, settings.l1)
    features = FeatureOptions.model_validate(settings.model_dump(include=set(FeatureOptions.model_fields)))
    results = compare(
        settings.dataset, settings.model, settings.learning_rate, settings.standardize, settings.delay, rule,
        settings.file, features,
    )  # fmt: skip
    source = settings.file if settings.file is not None else f"dataset {settings.dataset}"
    print(
        f"{source}: {results[0].events:,} events, {settings.model}, features {settings.features}, "
        f"optimizer {rule.optimizer}, l2={rule.l2:g}, l1={rule.l1:g}, standardize={settings.standardize}, "
        f"delay={settings.delay}"
    )
    for result in results:
        print(f"learning rate {result.learning_rate:g}" + (" (candidate)" if len(results) > 1 else ""))
        difference = result.max_weight_difference
        print(f"  largest weight difference  {difference:.3e}  (tolerance {WEIGHT_TOLERANCE:g})")
        print(f"  intercept difference       {result.bias_difference:.3e}")
        print(
            f"  progressive accuracy       ours {result.our_accuracy:.4%}   river {result.river_accuracy:.4%}"
        )
    agree = all(result.agree for result in results)
    print("agree" if agree else "DISAGREE")
    return 0 if agree else 1


def _topics(settings: TopicsSettings) -> int:
    from stream_neuron.tools.topics import create_topics

    created, existing = create_topics(settings)
    print(f"created: {', '.join(created) or 'none'}; already there: {', '.join(existing) or 'none'}")
    return 0


HANDLERS: dict[str, Callable[[Any], int]] = {
    "run": _run,
    "score": _score,
    "produce": _produce,
    "monitor": _monitor,
    "check-river": _check_river,
    "fit": _fit,
    "topics": _topics,
}


def one_line(error: BaseException) -> str:
    """An error as one line: pydantic's list of problems joined, anything else its message."""
    if isinstance(error, ValidationError):
        problems = []
        for problem in error.errors():
            where = ".".join(str(part) for part in problem["loc"])
            message = problem["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {message}" if where else message)
        return "; ".join(problems)
    return " ".join(str(error).split())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    # Every command, not only run and score: a client's own error line (kafka-python logs some with a
    # traceback, as it closes a connection) is one line of ours, never a traceback on the operator.
    client_log.install()
    if args.command is None:
        parser.print_help()
        return 0
    prefix = f"stream-neuron {args.command}"
    try:
        config = getattr(args, "config", None) or os.environ.get("STREAM_NEURON_CONFIG")
        check_sources(Path(config) if config else None)
        settings = settings_from_args(args, COMMAND_SETTINGS[args.command])
    except UnknownSettingError as error:
        print(f"{prefix}: invalid settings: {one_line(error)}", file=sys.stderr)
        return EXIT_USAGE
    except (ValidationError, ValueError) as error:
        print(f"{prefix}: invalid settings: {one_line(error)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        code = int(HANDLERS[args.command](settings))
        client_log.recovered()  # the command got its work done: say how many client errors it hid
        return code
    except OperatorError as error:
        print(f"{prefix}: {one_line(error)}", file=sys.stderr)
        return error.exit_code
    except OSError as error:  # a file that cannot be read or written
        print(f"{prefix}: {one_line(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
