"""Errors of the I/O layer that end a command with one clear line."""

from __future__ import annotations

from stream_neuron.errors import OperatorError


class StartupError(OperatorError):
    """The run cannot start (no broker, a missing input topic, an unusable snapshot...)."""


class PublishError(OperatorError):
    """The broker did not acknowledge an output record: nothing past it may be committed."""


class TakenOverError(OperatorError):
    """Another instance took over this model: this one stops without writing (status 3)."""

    exit_code = 3
