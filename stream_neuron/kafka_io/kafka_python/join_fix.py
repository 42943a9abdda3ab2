"""A group member's join must be finished, not forgotten, when a poll's time runs out in the middle of it.

Upstream behaviour it corrects: kafka-python 3.0 (up to at least 3.0.12), ``kafka/coordinator/base.py``,
``BaseCoordinator.join_group_async`` leaves a join attempt in flight (``_join_task``) when the poll's
time runs out, for the next poll to await; but the next poll awaits it only while ``need_rejoin()``
is true. ``ConsumerCoordinator.need_rejoin`` reads true for a group leader whose metadata changed
since its last assignment (``_assignment_snapshot != _metadata_snapshot``), and the attempt's own
assignment step makes the two equal. When the poll's time runs out after that step (while the
SyncGroup is answered), no later poll awaits the attempt, and the assignment it brings is never applied:
the member stays in the group owning no partition, until something else rebalances the group. A new
member takes that path at every start: its first assignment has no metadata of the topic yet, so it
joins again as soon as the metadata comes. A poll of a few milliseconds lands there every time; a
scorer's 200 ms poll on a loaded machine did in 3 of 12 starts, and served nothing for minutes.

:func:`install` wraps ``ConsumerCoordinator.need_rejoin``: also true while a join attempt is in flight,
so the next poll awaits it. Cost: an attempt that ended between two polls is not read but made again
(kafka-python starts a new one for a finished task), one more rebalance of the group, only in this
race. It is installed wherever this backend makes a consumer (``config.py``), after checking that
``need_rejoin`` takes the parameters it was written against and that the join keeps its attempt where
the fix reads it.
"""

from __future__ import annotations

from kafka.coordinator.base import BaseCoordinator
from kafka.coordinator.consumer import ConsumerCoordinator

from stream_neuron.kafka_io.kafka_python.patching import check_patchable, check_source

_MARK = "_stream_neuron_join_fix"
_EXPECTED_PARAMETERS = ["self"]


def install() -> None:
    """Idempotent; wraps ``ConsumerCoordinator.need_rejoin`` (see the module docstring)."""
    original = ConsumerCoordinator.need_rejoin
    if getattr(original, _MARK, False):
        return
    check_patchable(original, _EXPECTED_PARAMETERS, "the group join fix")
    check_source(
        BaseCoordinator.join_group_async,
        ["while self.need_rejoin()", "self._join_task"],
        "the group join fix",
        "join no longer keeps its attempt in _join_task",
    )

    def need_rejoin(self: ConsumerCoordinator) -> bool:
        return bool(original(self)) or self._join_task is not None

    setattr(need_rejoin, _MARK, True)
    ConsumerCoordinator.need_rejoin = need_rejoin
