"""deploy/local-kafka's own behaviour that needs no broker: clear errors and status."""

from __future__ import annotations

import socket
import subprocess
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
