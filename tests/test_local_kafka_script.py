"""deploy/local-kafka's own behaviour that needs no broker: clear errors, status, and the start's wait."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests import broker


def local_kafka(action: str, port: int, home: Path, **extra_env: str) -> subprocess.CompletedProcess[str]:
    return broker.local_kafka(action, 60, KAFKA_PORT=str(port), LOCAL_KAFKA_HOME=str(home), **extra_env)


def test_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        done = local_kafka("start", port=port, home=tmp_path)
    assert done.returncode == 1
    assert f"port {port} is taken by another process: stop it or set KAFKA_PORT" in done.stderr


def test_a_port_held_by_a_connection_is_a_clear_error(tmp_path: Path) -> None:
    # Bound but not listening, like the local end of a client connection: a connect probe misses it.
    with socket.socket() as free, socket.socket() as holder:
        free.bind(("127.0.0.1", 0))
        holder.bind(("127.0.0.1", 0))
        port, held = free.getsockname()[1], holder.getsockname()[1]
        free.close()
        done = local_kafka("start", port=port, home=tmp_path, KAFKA_CONTROLLER_PORT=str(held))
    assert done.returncode == 1
    assert f"port {held} is in use (held by a connection" in done.stderr
    assert "set KAFKA_CONTROLLER_PORT" in done.stderr


def test_status_and_stop_of_a_broker_that_is_not_running(tmp_path: Path) -> None:
    status = local_kafka("status", port=19399, home=tmp_path)
    assert status.returncode == 3 and "not running" in status.stdout
    stop = local_kafka("stop", port=19399, home=tmp_path)
    assert stop.returncode == 0 and "not running" in stop.stdout


def test_usage_and_version(tmp_path: Path) -> None:
    assert local_kafka("bogus", port=19399, home=tmp_path).returncode == 2
    assert local_kafka("version", port=19399, home=tmp_path).stdout.strip() == "4.1.1"


# A stand-in for `java kafka.Kafka <props>`: it writes its pid, then `lines` log lines `gap_s` apart,
# then listens on KAFKA_PORT and says it started, or stays silent when `answer` is false. Its command
# line carries "kafka.Kafka <props>", which is how local-kafka knows its broker.
FAKE_JAVA = """#!{python}
import os, socket, sys, time
with open(os.environ["FAKE_PID_FILE"], "w") as out:
    out.write(str(os.getpid()))
for i in range(int(os.environ["FAKE_LINES"])):
    print(f"INFO Completed load of Log(dir=t-{{i}}-0)", flush=True)
    time.sleep(float(os.environ["FAKE_GAP_S"]))
if os.environ["FAKE_ANSWER"] == "yes":
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", int(os.environ["KAFKA_PORT"])))
    server.listen()
    print("INFO [KafkaRaftServer nodeId=1] Kafka Server started", flush=True)
time.sleep(120)
"""


def fake_broker_home(tmp_path: Path) -> tuple[Path, Path]:
    """A LOCAL_KAFKA_HOME whose jars count as resolved, and a folder with the fake java first."""
    pom = Path(broker.REPO, "deploy", "pom.xml").read_bytes()
    home = tmp_path / "home"
    lib = home / f"lib-{broker.kafka_version()}-{hashlib.sha1(pom).hexdigest()[:8]}"
    lib.mkdir(parents=True)
    (lib / ".complete").touch()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    java = bin_dir / "java"
    java.write_text(FAKE_JAVA.format(python=sys.executable))
    java.chmod(0o755)
    return home, bin_dir


def start_fake(
    tmp_path: Path, lines: int, gap_s: float, answer: bool
) -> tuple[subprocess.CompletedProcess[str], int, Path]:
    home, bin_dir = fake_broker_home(tmp_path)
    port = broker.free_port_pair(os.getpid())
    data = home / f"node-{port}" / "data"
    data.mkdir(parents=True)
    (data / "meta.properties").touch()  # formatted already: start goes straight to the broker
    pid_file = tmp_path / "fake.pid"
    done = local_kafka(
        "start",
        port=port,
        home=home,
        PATH=f"{bin_dir}:{os.environ['PATH']}",
        KAFKA_START_TIMEOUT_S="3",
        FAKE_PID_FILE=str(pid_file),
        FAKE_LINES=str(lines),
        FAKE_GAP_S=str(gap_s),
        FAKE_ANSWER="yes" if answer else "no",
    )
    return done, port, pid_file


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_start_waits_for_a_broker_that_keeps_loading_past_the_timeout(tmp_path: Path) -> None:
    # Six seconds of loading against a three-second timeout: the wait is for progress, as after an
    # unclean stop with thousands of partitions to recover.
    done, port, pid_file = start_fake(tmp_path, lines=24, gap_s=0.25, answer=True)
    pid = int(pid_file.read_text())
    try:
        assert done.returncode == 0, done.stderr
        assert f"up on 127.0.0.1:{port} (pid {pid}" in done.stdout
        stop = local_kafka("stop", port=port, home=tmp_path / "home")
        assert stop.returncode == 0 and f"stopped (pid {pid})" in stop.stdout
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_a_broker_silent_for_the_timeout_is_stopped_with_a_clear_error(tmp_path: Path) -> None:
    done, port, pid_file = start_fake(tmp_path, lines=1, gap_s=0, answer=False)
    pid = int(pid_file.read_text())
    try:
        assert done.returncode == 1
        assert "the broker wrote nothing for 3s and did not answer: stopped it" in done.stderr
        for _ in range(100):
            if not alive(pid):
                break
            time.sleep(0.1)
        assert not alive(pid), "the silent broker was left running"
        assert local_kafka("status", port=port, home=tmp_path / "home").returncode == 3
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
