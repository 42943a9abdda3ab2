"""The command's start: it restarts itself once under the allocator's huge pages where the machine
grants them, and never where the operator chose otherwise (stream_neuron.launch)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stream_neuron import launch

GLIBC = (2, 36)


def test_the_huge_pages_tunable_is_added_to_the_operator_s_own() -> None:
    assert launch.huge_page_environment({"PATH": "/bin"}, GLIBC, True) == {
        "PATH": "/bin",
        "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1",
        "_STREAM_NEURON_RESTARTED": "1",
    }
    kept = launch.huge_page_environment({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, GLIBC, True)
    assert kept is not None
    assert kept["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"


@pytest.mark.parametrize(
    ("environ", "glibc", "possible"),
    [
        ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, GLIBC, True),  # the operator's choice
        ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=2"}, GLIBC, True),
        ({"_STREAM_NEURON_RESTARTED": "1"}, GLIBC, True),  # restarted once already
        ({}, None, True),  # another C library
        ({}, (2, 34), True),  # a glibc without the tunable
        ({}, GLIBC, False),  # huge pages "never"
    ],
)
def test_no_restart_where_it_would_change_nothing_or_was_chosen(
    environ: dict[str, str], glibc: tuple[int, int] | None, possible: bool
) -> None:
    assert launch.huge_page_environment(environ, glibc, possible) is None


@pytest.mark.parametrize(
    ("setting", "possible"),
    [
        ("always [madvise] never\n", True),
        ("[always] madvise never\n", True),
        ("always madvise [never]\n", False),
    ],
)
def test_the_kernel_s_setting_says_whether_huge_pages_are_granted(
    tmp_path: Path, setting: str, possible: bool
) -> None:
    (tmp_path / "enabled").write_text(setting)
    assert launch.huge_pages_possible(tmp_path / "enabled") is possible
    assert launch.huge_pages_possible(tmp_path / "missing") is False


STARTS = """
import os, sys
from stream_neuron import launch
print("start", os.getpid(), flush=True)
launch.restart_with_huge_pages()
held = [bytes(8 << 20) for _ in range(2)]  # blocks the allocator maps on their own
huge = [line.split()[1] for line in open("/proc/self/smaps_rollup") if line.startswith("AnonHugePages")]
print("running", os.getpid(), os.environ.get("GLIBC_TUNABLES"), int(huge[0]) > 0, sys.argv[1:])
"""


def started(environ: dict[str, str]) -> tuple[list[str], list[str]]:
    """The pids of each start, and what the process says it runs with (the tunables, whether any of
    its memory is on huge pages, its arguments)."""
    done = subprocess.run(
        [sys.executable, "-c", STARTS, "run", "--model-name", "a b"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    *starts, running = done.stdout.splitlines()
    return [line.removeprefix("start ") for line in starts], running.split(" ", 4)[1:]


def asks_for_huge_pages_only() -> bool:
    """The kernel grants huge pages only where memory asks (``madvise``): then none without the tunable."""
    try:
        return "[madvise]" in launch.THP_SETTING.read_text()
    except OSError:
        return False


def test_the_process_restarts_once_in_place_with_huge_pages_where_the_machine_grants_them() -> None:
    environ = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "_STREAM_NEURON_RESTARTED")}
    starts, (pid, tunables, huge, argv) = started(environ)
    assert argv == "['run', '--model-name', 'a b']"
    if launch.command_environment(environ) is None:  # not Linux with glibc >= 2.35 and huge pages
        assert (starts, tunables) == ([pid], "None")
    else:  # the same process, arguments and all, started again once, its large blocks on huge pages
        assert (starts, tunables, huge) == ([pid, pid], "glibc.malloc.hugetlb=1", "True")


def test_an_operator_who_named_the_tunable_keeps_the_process_as_started() -> None:
    environ = dict(os.environ, GLIBC_TUNABLES="glibc.malloc.hugetlb=0")
    environ.pop("_STREAM_NEURON_RESTARTED", None)
    starts, (pid, tunables, huge, argv) = started(environ)
    assert (starts, tunables, argv) == ([pid], "glibc.malloc.hugetlb=0", "['run', '--model-name', 'a b']")
    if asks_for_huge_pages_only():
        assert huge == "False"


def test_the_command_starts_the_cli_and_its_settings_take_the_restarted_environment() -> None:
    """The restarted process's marker is no ``STREAM_NEURON_*`` variable, which would be a setting
    that no command knows: the command gets past its settings to its own one-line error."""
    version = subprocess.run(
        [sys.executable, "-m", "stream_neuron", "--version"], capture_output=True, text=True, timeout=60
    )
    assert (version.returncode, version.stdout.split()[0]) == (0, "stream-neuron")
    missing = subprocess.run(
        [sys.executable, "-m", "stream_neuron", "produce", "--topic", "t", "--file", "/no/such/file.csv"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    said = "stream-neuron produce: no such file: /no/such/file.csv\n"
    assert (missing.returncode, missing.stderr) == (1, said)
