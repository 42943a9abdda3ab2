"""Installing the package: a quiet build (no deprecation tables from setuptools) with the compiled
kernels inside."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_the_wheel_builds_without_backend_warnings(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Warning" not in output and "deprecated" not in output, output
    (wheel,) = tmp_path.glob("stream_neuron-*.whl")
    archive = zipfile.ZipFile(wheel)
    names = archive.namelist()
    assert any(name.startswith("stream_neuron/neuron/_kernels") for name in names)
    assert "stream_neuron/tools/demo.py" in names
    # the command starts at its launcher, which restarts the process before the CLI is imported
    (entry_points,) = [name for name in names if name.endswith(".dist-info/entry_points.txt")]
    assert "stream-neuron = stream_neuron.launch:main" in archive.read(entry_points).decode()
    assert "stream_neuron/__main__.py" in names
    assert not any(name.startswith(("tests/", "benchmarks/")) for name in names)
