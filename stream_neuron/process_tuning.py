"""How a streaming command (``run``, ``score``) sets up the Python process it owns for a long loop of
small steps: the cyclic garbage collector, and numpy's BLAS threads."""

from __future__ import annotations

import gc
import logging
import os

from threadpoolctl import threadpool_limits

log = logging.getLogger("stream_neuron")

# The hot loop makes a few container objects per event (records, tuples, lists), none in a cycle: at
# the default threshold (700) the collector's young pass ran every few dozen events, 7% of the run.
YOUNG_COLLECTION_THRESHOLD = 50_000

# Any of these set by the operator is a choice about BLAS threads that the component keeps.
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")


def calm_collector() -> None:
    """Start-up objects (clients, schemas) live for the whole run: the cyclic collector leaves them
    alone (its full passes stay short), and its young pass waits for 50,000 new containers."""
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, older, oldest)


def one_blas_thread() -> bool:
    """Limit numpy's BLAS to one thread for the rest of the process, unless the operator chose a number
    in the environment: whether it was limited.

    A poll's products (500 rows by some tens of weights) are large enough for OpenBLAS to split
    between a thread per core, and small enough that one thread computes them as fast. After each
    product the workers spin, waiting for the next, and a poll brings one every few milliseconds, so
    they never sleep: they take the cores the Kafka client's threads (and, on a small host, the
    broker) need (``perf``: 4-6% of a run's samples in ``blas_thread_server``). On 2 cores, in one
    set of 5 alternated runs (a process each, ``benchmarks/features.py``'s streams,
    ``OPENBLAS_NUM_THREADS=1`` against none), ``run`` went from 128,561 to 161,623 events/s with 40
    fixed features and from 83,982 to 104,364 with hashed ones; three later sets of 5 to 7 rounds
    on the same shared machine showed no difference beyond the runs' spread (the medians of one
    thread and two in either order). With 10 features a poll's products are too small to be split,
    and the limit changes nothing. The cost: a product large enough to gain from threads (a model
    of some thousands of dense features in mini-batches) runs on one core. ``fit``, whose epochs
    take whole training sets, keeps its threads."""
    chosen = [name for name in BLAS_THREAD_VARIABLES if os.environ.get(name)]
    if chosen:
        log.debug("BLAS threads as %s says", chosen[0])
        return False
    threadpool_limits(limits=1, user_api="blas")
    return True


def steady_process() -> None:
    """Both of the above, once start-up is done."""
    calm_collector()
    one_blas_thread()
