"""The ``stream-neuron`` command's entry point: the process restarts itself once, before anything else,
so that the C library's allocator backs its large blocks with huge pages.

On Linux with glibc, the allocator asks for transparent huge pages only when the ``GLIBC_TUNABLES``
environment variable says ``glibc.malloc.hugetlb=1``, and glibc reads it once, as the process
starts; with the kernel's default (``madvise``) the allocator's blocks are otherwise backed by 4 KiB
pages. A stream's process writes megabytes a second into fresh blocks (a poll's records, a
snapshot's few copies of a hashed model's 5 MiB), and on a virtual machine each 4 KiB page of them
costs a fault (2.7 us here); numpy asks for huge pages for its own large arrays (the weights)
already. So the command replaces itself (``execve``: the same process id, arguments, open files and
signals' defaults) with the same command under that variable, once.

Measured on 2 cores (``benchmarks/features.py``'s streams, ``run`` on librdkafka, 19 alternated
rounds in three sets, a process each, medians): 40 fixed features 156,240 -> 160,027 events/s (+2%),
50 hashed features of 2^20 buckets 102,984 -> 115,178 (+12%); the hashed run's peak memory 237 ->
247 MB.

The cost: the start imports the package twice (about 0.13 s), and up to a huge page (2 MiB) more of
memory per large block. It is left alone, and the command starts once, where it would change
nothing or where the operator chose: not Linux, not glibc 2.35 or later, huge pages ``never`` in
``/sys/kernel/mm/transparent_hugepage/enabled``, or ``GLIBC_TUNABLES`` naming
``glibc.malloc.hugetlb`` already (``glibc.malloc.hugetlb=0`` turns it off)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn

HUGE_PAGES_TUNABLE = "glibc.malloc.hugetlb"
TUNABLES_VARIABLE = "GLIBC_TUNABLES"
# Set in the restarted process: it never restarts again, whatever became of the tunables (not a
# STREAM_NEURON_ variable: those are settings, and an unknown one is an operator error).
RESTARTED_VARIABLE = "_STREAM_NEURON_RESTARTED"
THP_SETTING = Path("/sys/kernel/mm/transparent_hugepage/enabled")
OLDEST_GLIBC_WITH_HUGETLB = (2, 35)


def glibc_version() -> tuple[int, int] | None:
    """This process's glibc version, or None when its C library is another (musl, say) or unknown."""
    try:
        name, _, version = (os.confstr("CS_GNU_LIBC_VERSION") or "").partition(" ")
        major, minor = version.split(".")[:2]
        return (int(major), int(minor)) if name == "glibc" else None
    except (ValueError, OSError):
        return None


def huge_pages_possible(thp_setting: Path = THP_SETTING) -> bool:
    """Whether the kernel grants transparent huge pages to memory that asks for them."""
    try:
        return "[never]" not in thp_setting.read_text()
    except OSError:
        return False


def huge_page_environment(
    environ: Mapping[str, str], glibc: tuple[int, int] | None, thp_possible: bool
) -> dict[str, str] | None:
    """The environment to restart in, or None to start as it is.

    >>> huge_page_environment({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, (2, 36), True)
    {'GLIBC_TUNABLES': 'glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1', '_STREAM_NEURON_RESTARTED': '1'}
    >>> huge_page_environment({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, (2, 36), True) is None
    True
    """
    if RESTARTED_VARIABLE in environ or not thp_possible:
        return None
    if glibc is None or glibc < OLDEST_GLIBC_WITH_HUGETLB:
        return None
    tunables = environ.get(TUNABLES_VARIABLE, "")
    if any(item.partition("=")[0] == HUGE_PAGES_TUNABLE for item in tunables.split(":")):
        return None
    chosen = f"{HUGE_PAGES_TUNABLE}=1"
    return {
        **environ,
        TUNABLES_VARIABLE: f"{tunables}:{chosen}" if tunables else chosen,
        RESTARTED_VARIABLE: "1",
    }


def command_environment(environ: Mapping[str, str]) -> dict[str, str] | None:
    """The environment the command restarts in on this machine, or None: it starts as it is."""
    if not sys.platform.startswith("linux"):
        return None
    return huge_page_environment(environ, glibc_version(), huge_pages_possible())


def restart_with_huge_pages() -> None:
    """Replace this process with the same command under huge pages, where that changes something; else
    (or if the restart fails) return, and the command starts as it is."""
    environ = command_environment(os.environ)
    if environ is None or getattr(sys, "frozen", False) or not sys.executable:
        return
    try:
        os.execve(sys.executable, sys.orig_argv, environ)
    except OSError:
        return


def main() -> NoReturn:
    restart_with_huge_pages()
    from stream_neuron.cli import main as command

    sys.exit(command())
