"""Errors of the I/O layer that end a run with one clear line."""

from __future__ import annotations


class StartupError(RuntimeError):
    """The run cannot start (no broker, a missing input topic, an unusable snapshot...)."""


class PublishError(RuntimeError):
    """The broker did not acknowledge an output record: nothing past it may be committed."""
