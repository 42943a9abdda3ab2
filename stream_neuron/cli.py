"""The ``stream-neuron`` command line: thin glue over the layers, one subcommand a job."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from stream_neuron import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stream-neuron",
        description="An online-learning logistic neuron (or perceptron) on a Kafka stream.",
    )
    parser.add_argument("--version", action="version", version=f"stream-neuron {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
