"""The ``stream-neuron`` command line: thin glue over the layers, one subcommand a job.

``run`` flags are generated from :class:`stream_neuron.config.Settings`, so flags, environment
variables (``STREAM_NEURON_*``) and config-file keys are always the same names.
"""

from __future__ import annotations

import argparse
import logging
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from stream_neuron import __version__
from stream_neuron.config import DEFAULT_TOPICS, Settings

EXIT_USAGE = 2
EXIT_FENCED = 3


def _add_settings_flags(parser: argparse.ArgumentParser) -> None:
    for name, field in Settings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        annotation = field.annotation
        args = typing.get_args(annotation)
        is_bool = annotation is bool
        choices = None
        literal = next((a for a in (annotation, *args) if typing.get_origin(a) is typing.Literal), None)
        if literal is not None:
            choices = list(typing.get_args(literal))
        help_text = field.description or ""
        if field.default is not None and not is_bool:
            help_text = f"{help_text} (default: {field.default})".strip()
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


def settings_from_args(args: argparse.Namespace) -> Settings:
    given = {name: getattr(args, name) for name in Settings.model_fields if hasattr(args, name)}
    return Settings(**given)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stream-neuron",
        description="An online-learning logistic neuron (or perceptron) on a Kafka stream.",
    )
    parser.add_argument("--version", action="version", version=f"stream-neuron {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser(
        "run", help="learn from the input topic; publish predictions, metrics, snapshots"
    )
    _add_settings_flags(run)

    produce = commands.add_parser("produce", help="load events into a topic")
    produce.add_argument(
        "--bootstrap-servers", default=None, help="default: STREAM_NEURON_BOOTSTRAP_SERVERS or 127.0.0.1:9092"
    )
    produce.add_argument("--topic", default=DEFAULT_TOPICS["input_topic"])
    source = produce.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", choices=["phishing", "bananas", "synthetic"])
    source.add_argument("--file", type=Path, help="CSV (with --label-column) or JSON lines (.jsonl)")
    produce.add_argument("--label-column", default=None, help="CSV: the label column (else no labels)")
    produce.add_argument("--n", type=int, default=10_000, help="synthetic: number of events")
    produce.add_argument("--features", type=int, default=10, help="synthetic: number of features")
    produce.add_argument("--noise", type=float, default=0.5, help="synthetic: label noise")
    produce.add_argument("--drift-at", type=int, default=None, help="synthetic: concept drift at this event")
    produce.add_argument(
        "--rate", type=float, default=None, help="events per second (default: as fast as possible)"
    )
    produce.add_argument(
        "--unlabelled-fraction", type=float, default=0.0, help="drop the label of this fraction"
    )
    produce.add_argument("--seed", type=int, default=0)

    monitor = commands.add_parser("monitor", help="show the latest metrics of a model")
    monitor.add_argument("--bootstrap-servers", default=None)
    monitor.add_argument("--metrics-topic", default=DEFAULT_TOPICS["metrics_topic"])
    monitor.add_argument("--follow", action="store_true", help="a live view of each new metrics record")
    monitor.add_argument("--plot", type=Path, default=None, help="draw the learning curve into this PNG")

    check = commands.add_parser("check-river", help="replay a dataset through our neuron and river; compare")
    check.add_argument("--dataset", choices=["phishing", "bananas"], default="phishing")
    check.add_argument("--model", choices=["logistic", "perceptron"], default="logistic")
    check.add_argument(
        "--learning-rate", type=float, default=None, help="default 0.01 (logistic), 1.0 (perceptron)"
    )
    check.add_argument("--standardize", action="store_true")
    return parser


def _bootstrap(value: str | None) -> str:
    from stream_neuron.kafka_io.reachability import require_broker

    bootstrap = value or Settings().bootstrap_servers
    require_broker(bootstrap)
    return bootstrap


def _run(args: argparse.Namespace) -> int:
    from kafka.errors import KafkaError

    from stream_neuron.kafka_io.errors import PublishError, StartupError
    from stream_neuron.kafka_io.transactions import FencedError
    from stream_neuron.runner import StopFlag, run
    from stream_neuron.snapshots import SnapshotError

    try:
        settings = settings_from_args(args)
    except (ValidationError, ValueError) as error:
        print(f"stream-neuron run: invalid settings: {_one_line(error)}", file=sys.stderr)
        return EXIT_USAGE
    stop = StopFlag()
    stop.install()
    try:
        run(settings, stop)
    except (StartupError, SnapshotError) as error:
        print(f"stream-neuron run: {error}", file=sys.stderr)
        return 1
    except FencedError as error:
        print(f"stream-neuron run: {error}", file=sys.stderr)
        return EXIT_FENCED
    except (PublishError, KafkaError) as error:
        print(
            f"stream-neuron run: stopped: {error} (nothing after the last checkpoint was committed; "
            "a restart resumes there)",
            file=sys.stderr,
        )
        return 1
    return 0


def _one_line(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in error.errors()
        )
    return str(error)


def _produce(args: argparse.Namespace) -> int:
    from stream_neuron import sources
    from stream_neuron.produce import produce_events

    events: typing.Iterable[Any]
    total: int | None = None
    if args.dataset == "synthetic":
        events = sources.synthetic(args.n, args.features, args.noise, args.drift_at, args.seed)
        total = args.n
    elif args.dataset is not None:
        events = sources.river_dataset(args.dataset)
        total = sources.DATASET_SIZES[args.dataset]
    elif not args.file.is_file():
        print(f"stream-neuron produce: no such file: {args.file}", file=sys.stderr)
        return EXIT_USAGE
    elif args.file.suffix in (".jsonl", ".ndjson", ".json"):
        events = sources.jsonl_file(args.file)
    else:
        events = sources.csv_file(args.file, args.label_column)
    summary = produce_events(
        _bootstrap(args.bootstrap_servers),
        args.topic,
        events,
        args.rate,
        args.unlabelled_fraction,
        args.seed,
        progress=True,
        total=total,
    )
    rate = summary.sent / summary.seconds if summary.seconds else 0.0
    print(
        f"sent {summary.sent:,} events to {args.topic} ({summary.unlabelled:,} unlabelled, "
        f"{summary.bad_rows:,} bad rows skipped) in {summary.seconds:.1f} s ({rate:,.0f}/s)"
    )
    return 0


def _monitor(args: argparse.Namespace) -> int:
    from stream_neuron.monitor import follow_metrics, format_metrics, read_metrics

    bootstrap = _bootstrap(args.bootstrap_servers)
    if args.follow:
        from stream_neuron.live import follow

        try:
            follow(follow_metrics(bootstrap, args.metrics_topic))
        except KeyboardInterrupt:
            return 0
        return 0
    records = read_metrics(bootstrap, args.metrics_topic)
    if not records:
        print(f"no metrics on {args.metrics_topic} yet")
        return 0
    print(format_metrics(records[-1]))
    if args.plot is not None:
        from stream_neuron.curve import draw, learning_curve

        curve = learning_curve(records)
        draw(curve, args.plot, title=f"learning curve: {args.metrics_topic}")
        print(f"learning curve of {len(curve.events)} metrics windows drawn to {args.plot}")
    return 0


def _check_river(args: argparse.Namespace) -> int:
    from stream_neuron.check_river import WEIGHT_TOLERANCE, compare

    result = compare(args.dataset, args.model, args.learning_rate, args.standardize)
    print(f"dataset {args.dataset}: {result.events:,} events, {args.model}, standardize={args.standardize}")
    print(f"largest weight difference  {result.max_weight_difference:.3e}  (tolerance {WEIGHT_TOLERANCE:g})")
    print(f"intercept difference       {result.bias_difference:.3e}")
    print(f"progressive accuracy       ours {result.our_accuracy:.4%}   river {result.river_accuracy:.4%}")
    print("agree" if result.agree else "DISAGREE")
    return 0 if result.agree else 1


HANDLERS: dict[str, Any] = {
    "run": _run,
    "produce": _produce,
    "monitor": _monitor,
    "check-river": _check_river,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("kafka").setLevel(logging.ERROR)
    if args.command is None:
        parser.print_help()
        return 0
    from stream_neuron.kafka_io.errors import StartupError

    try:
        return int(HANDLERS[args.command](args))
    except StartupError as error:
        print(f"stream-neuron {args.command}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
