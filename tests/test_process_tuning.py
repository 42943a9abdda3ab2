"""The streaming commands' process set-up: one BLAS thread unless the operator chose, the collector
calmed. Each case runs in a new interpreter, since BLAS reads its environment once, when numpy loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from stream_neuron.process_tuning import BLAS_THREAD_VARIABLES

PROBE = """
import gc, json
import numpy as np
from threadpoolctl import threadpool_info
from stream_neuron.process_tuning import calm_collector, one_blas_thread
np.ones((500, 40)) @ np.ones(40)  # the BLAS loaded and its threads started, as a poll starts them
calm_collector()
print(json.dumps({
    "limited": one_blas_thread(),
    "blas_threads": sorted({pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}),
    "young_threshold": gc.get_threshold()[0],
    "frozen": gc.get_freeze_count() > 0,
}))
"""


def probe(**environment: str) -> dict[str, object]:
    env = {name: value for name, value in os.environ.items() if name not in BLAS_THREAD_VARIABLES}
    env.update(environment)
    command = [sys.executable, "-c", PROBE]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    answer: dict[str, object] = json.loads(result.stdout.splitlines()[-1])
    return answer


def test_a_streaming_process_computes_on_one_blas_thread_with_the_collector_calmed() -> None:
    assert probe() == {"limited": True, "blas_threads": [1], "young_threshold": 50_000, "frozen": True}


@pytest.mark.parametrize("variable", BLAS_THREAD_VARIABLES)
def test_a_number_of_threads_the_operator_chose_is_kept(variable: str) -> None:
    found = probe(**{variable: "2"})
    assert found["limited"] is False
    if variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):  # the two numpy's OpenBLAS reads
        assert found["blas_threads"] == [2]
