"""Finding a real Apache Kafka broker for the tests, in the design's order.

1. ``KAFKA_BOOTSTRAP_SERVERS``: a broker someone already runs (a cluster, the compose stack).
2. A testcontainers ``apache/kafka`` container, when a Docker engine answers.
3. ``deploy/local-kafka start``: the same Kafka version as a JVM process from Maven Central jars.

No broker is a failure with a message that says what to do, never a skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOCAL_KAFKA = REPO / "deploy" / "local-kafka"


class NoBrokerError(RuntimeError):
    pass


def local_kafka(action: str, timeout_s: float = 180, **env: str) -> subprocess.CompletedProcess[str]:
    """``deploy/local-kafka <action>`` with ``env`` (KAFKA_PORT, LOCAL_KAFKA_HOME, ...) over ours."""
    return subprocess.run(
        [str(LOCAL_KAFKA), action],
        env=dict(os.environ, **env),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def kafka_version() -> str:
    return local_kafka("version").stdout.strip()


def answers(bootstrap: str, timeout_s: float = 3.0) -> bool:
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
            return True
    except OSError:
        return False


def docker_engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False)
    return probe.returncode == 0


@contextmanager
def testcontainers_kafka() -> Iterator[str]:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    port = 9092
    container = (
        DockerContainer(f"apache/kafka:{kafka_version()}")
        .with_bind_ports(port, port)
        .with_env("KAFKA_NODE_ID", "1")
        .with_env("KAFKA_PROCESS_ROLES", "broker,controller")
        .with_env("KAFKA_LISTENERS", f"PLAINTEXT://:{port},CONTROLLER://:9093")
        .with_env("KAFKA_ADVERTISED_LISTENERS", f"PLAINTEXT://127.0.0.1:{port}")
        .with_env("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER")
        .with_env("KAFKA_CONTROLLER_QUORUM_VOTERS", "1@localhost:9093")
        .with_env("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
        .with_env("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
        .with_env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")
    )
    with container:
        wait_for_logs(container, "Kafka Server started", timeout=120)
        yield f"127.0.0.1:{port}"


@contextmanager
def session_broker() -> Iterator[str]:
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        if not answers(configured):
            raise NoBrokerError(
                f"KAFKA_BOOTSTRAP_SERVERS={configured} does not answer: start that broker or unset it"
            )
        yield configured
        return
    if docker_engine_answers():
        with testcontainers_kafka() as bootstrap:
            yield bootstrap
        return
    port = os.environ.get("KAFKA_PORT", "9092")
    # The script itself gives up on a broker that stops making progress; a killed broker with a large
    # data folder may take minutes to recover, and that is a wait, not a failure.
    started = local_kafka("start", timeout_s=1800)
    if started.returncode != 0:
        raise NoBrokerError(
            "no Kafka broker: KAFKA_BOOTSTRAP_SERVERS is unset, no Docker engine answers, and "
            f"deploy/local-kafka start failed:\n{started.stdout}{started.stderr}"
        )
    yield f"127.0.0.1:{port}"


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_pair(seed: int) -> int:
    """A port P with P and P+1 free, outside the kernel's ephemeral range: a client that keeps
    reconnecting to a stopped broker could otherwise be handed the broker's own port as its local
    port (a TCP self-connect) and keep the broker from binding it again."""
    low, high = (int(v) for v in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    below = range(max(1024, low - 8000), low - 1) if low > 2048 else range(0)
    above = range(high + 1, min(65534, high + 4000))
    candidates = [*below, *above] or list(range(20000, 30000))
    start = seed % len(candidates)
    for port in candidates[start:] + candidates[:start]:
        if _bindable(port) and _bindable(port + 1):
            return port
    raise NoBrokerError("no free pair of ports for a private test broker")


@contextmanager
def private_broker(home: Path, seed: int, **settings: str) -> Iterator[tuple[str, Callable[[str], str]]]:
    """A broker of its own (port chosen by :func:`free_port_pair`) sharing the session's jar cache,
    for tests that stop and restart it; yields the bootstrap address and ``control(action) -> stdout``.
    ``settings``: more of local-kafka's environment (``KAFKA_SECURITY="sasl_ssl"``, say)."""
    home.mkdir(parents=True)
    shared = Path(os.path.expanduser("~/.cache/stream-neuron/local-kafka"))
    for entry in shared.iterdir() if shared.is_dir() else []:
        if entry.name.startswith(("lib-", "m2")):
            (home / entry.name).symlink_to(entry)
    port = free_port_pair(seed)
    env = {
        "KAFKA_PORT": str(port),
        "KAFKA_CONTROLLER_PORT": str(port + 1),
        "LOCAL_KAFKA_HOME": str(home),
        **settings,
    }

    def control(action: str) -> str:
        done = local_kafka(action, **env)
        assert done.returncode == 0, f"local-kafka {action} on port {port}:\n{done.stdout}{done.stderr}"
        return done.stdout

    control("start")
    try:
        yield f"127.0.0.1:{port}", control
    finally:
        control("stop")
