"""Which implementation runs the hot paths: the optional compiled kernels, or the numpy reference.

The compiled module is built from ``_kernels.c`` at install time when a C compiler is present.
``STREAM_NEURON_KERNEL=numpy`` forces the reference path (the tests run both and compare them).
"""

from __future__ import annotations

import os
from types import ModuleType


def _load() -> ModuleType | None:
    if os.environ.get("STREAM_NEURON_KERNEL", "auto") == "numpy":
        return None
    try:
        from stream_neuron.neuron import _kernels  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _kernels  # type: ignore[no-any-return]


compiled: ModuleType | None = _load()


def name() -> str:
    """``"compiled"`` or ``"numpy"``: what the hot paths use now (reported by benchmarks and logs)."""
    return "numpy" if compiled is None else "compiled"
