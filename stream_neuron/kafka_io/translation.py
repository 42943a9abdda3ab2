"""A backend's errors turned into the neutral ones at its boundary: every public method of a class (and
every function) a backend hands out goes through :class:`Translation`, so no library error reaches the
code above the Kafka layer, whichever call raised it."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from stream_neuron.kafka_io.errors import KafkaIOError

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C", bound=type)


class Translation:
    """``library_error`` (the client library's base exception) mapped by ``neutral``."""

    def __init__(
        self, library_error: type[BaseException], neutral: Callable[[BaseException], KafkaIOError]
    ) -> None:
        self.library_error, self.neutral = library_error, neutral

    def function(self, function: F) -> F:
        """``function`` raising neutral errors only."""
        library_error, neutral = self.library_error, self.neutral

        @functools.wraps(function)
        def translating(*args: Any, **kwargs: Any) -> Any:
            try:
                return function(*args, **kwargs)
            except library_error as error:
                raise neutral(error) from None

        return translating  # type: ignore[return-value]

    def cls(self, cls: C) -> C:
        """``cls`` with every public method (and ``__init__``) raising neutral errors only."""
        for name, member in list(vars(cls).items()):
            if callable(member) and (not name.startswith("_") or name == "__init__"):
                setattr(cls, name, self.function(member))
        return cls
