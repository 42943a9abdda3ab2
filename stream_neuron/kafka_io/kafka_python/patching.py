"""The guard every fix of kafka-python passes before it patches: the library's release series and the
patched function's parameters must be the ones the fix was written against."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

import kafka

from stream_neuron.kafka_io.errors import StartupError

log = logging.getLogger(__name__)

TESTED_SERIES = (3, 0)


def _series(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:2] if part.isdigit())


def check_patchable(function: Callable[..., Any], parameters: list[str], what: str) -> None:
    """:class:`StartupError` when ``function`` does not take ``parameters`` (the fix ``what`` would
    patch something it was not written for); a warning for a release outside the tested series."""
    series = ".".join(map(str, TESTED_SERIES))
    if list(inspect.signature(function).parameters) != parameters:
        raise StartupError(
            f"{what} needs kafka-python {series}.x: kafka-python {kafka.__version__} changed "
            f"{function.__qualname__} (pip install 'kafka-python=={series}.*', or --kafka-client confluent)"
        )
    if _series(kafka.__version__) != TESTED_SERIES:
        log.warning("kafka-python %s: %s was tested with %s.x only", kafka.__version__, what, series)


def check_source(function: Callable[..., Any], fragments: list[str], what: str, changed: str) -> None:
    """:class:`StartupError` saying what ``changed`` when ``function``'s source no longer holds every one
    of ``fragments``: the state the fix ``what`` reads, kept where it was written to find it."""
    source = inspect.getsource(function)
    if not all(fragment in source for fragment in fragments):
        raise StartupError(f"{what}: kafka-python's {changed}")
