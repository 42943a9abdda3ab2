"""Against a secured broker (``KAFKA_SECURITY=sasl_ssl deploy/local-kafka start``): SASL_SSL with
SCRAM, mutual TLS, and ACLs that allow the application user only its own topics and groups. The
component works end to end and exactly once over it; every misconfiguration ends within 30 s in one
line that names the cause; the password is nowhere in what the component writes."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka.admin import (
    ACL,
    ACLOperation,
    ACLPermissionType,
    KafkaAdminClient,
    NewTopic,
    ResourcePattern,
    ResourceType,
)

from stream_neuron.common_settings import CommonSettings
from stream_neuron.kafka_io.kafka_python.config import client_config
from tests.broker import private_broker
from tests.component import (
    EndWatcher,
    Topics,
    command,
    json_records,
    kill_hard,
    phishing_events,
    raw_records,
    send,
    start_component,
    tool_command,
    wait_for,
)
from tests.datasets import river_phishing_correct
from tests.kafka_helpers import CLIENT_SETTINGS, read_to_end, unique_name

pytestmark = pytest.mark.kafka


class Secured:
    def __init__(self, bootstrap: str, config: Path) -> None:
        self.bootstrap, self.config = bootstrap, config
        self.secrets = config.parent / "secrets"
        self.password = (self.secrets / "app.password").read_text().strip()

    def superuser(self) -> dict[str, Any]:
        """The broker's own user (the only super user), for what the application user may not do."""
        return {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": "broker",
            "sasl_plain_password": (self.secrets / "broker.password").read_text().strip(),
            "ssl_cafile": str(self.secrets / "ca.pem"),
            "ssl_certfile": str(self.secrets / "broker.pem"),
            "ssl_keyfile": str(self.secrets / "broker.key"),
        }


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    home = tmp_path_factory.mktemp("secured") / "kafka"
    with private_broker(
        home,
        seed=os.getpid() + 4242,
        KAFKA_SECURITY="sasl_ssl",
        KAFKA_APP_TOPICS="sn-*",
        KAFKA_APP_GROUPS="sn-*",
    ) as (bootstrap, control):
        config = Path(control("start").strip().splitlines()[-1])  # start on a running broker: a no-op
        assert config.name == "client.toml" and config.is_file()
        settings = CommonSettings(config=config)
        client_settings = client_config(settings.connection, "stream-neuron-tests")
        client_settings.pop("bootstrap_servers")
        client_settings.pop("client_id")
        CLIENT_SETTINGS[bootstrap] = client_settings
        try:
            yield Secured(bootstrap, config)
        finally:
            CLIENT_SETTINGS.pop(bootstrap, None)


def cli(*args: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        tool_command(*args),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def test_the_client_config_keeps_the_password_out(secured: Secured) -> None:
    text = secured.config.read_text()
    assert secured.password not in text and "sasl_password_file" in text
    assert oct(secured.config.stat().st_mode)[-3:] == "600"
    assert oct((secured.secrets / "app.password").stat().st_mode)[-3:] == "600"


def test_phishing_over_sasl_ssl_reproduces_river(secured: Secured) -> None:
    topics = Topics.create(secured.bootstrap)
    config = ("--config", str(secured.config))
    produced = cli("produce", *config, "--topic", topics.input, "--dataset", "phishing")
    assert produced.returncode == 0, produced.stderr
    flags = (*config, "--standardize", "--learning-rate", "0.01")
    done = subprocess.run(
        command(secured.bootstrap, topics, *flags, "--max-events", "1250"),
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    shown = cli("monitor", *config, "--metrics-topic", topics.metrics)
    assert shown.returncode == 0, shown.stderr
    river_correct = river_phishing_correct(0.01)
    assert f"cumulative accuracy  {river_correct / 1250:.6g}" in shown.stdout
    predictions = json_records(secured.bootstrap, topics.predictions)
    assert (
        len(predictions) == 1250 and sum(p["prediction"] == p["label"] for p in predictions) == river_correct
    )
    checked = cli("check-river", *config)
    assert checked.returncode == 0 and checked.stdout.strip().endswith("agree")
    # The password: never in a log line, a metrics record, a snapshot or a dead letter.
    send(secured.bootstrap, topics.input, [b"not json"])
    done = subprocess.run(
        command(secured.bootstrap, topics, *flags, "--max-events", "1"),
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    written = [done.stderr, produced.stderr, shown.stdout]
    for topic in (topics.metrics, topics.model, topics.dead_letters, topics.predictions):
        for record in read_to_end(secured.bootstrap, topic):
            written.append(repr(record))
    assert len(raw_records(secured.bootstrap, topics.dead_letters)) == 1
    assert not any(secured.password in text for text in written)


def test_exactly_once_over_sasl_ssl_survives_a_kill(secured: Secured) -> None:
    events = phishing_events()
    topics = Topics.create(secured.bootstrap)
    send(secured.bootstrap, topics.input, events)
    flags = ("--config", str(secured.config), "--guarantee", "exactly-once", "--commit-interval-ms", "50",
             "--poll-max-records", "50")  # fmt: skip
    process = start_component(secured.bootstrap, topics, *flags)
    watcher = EndWatcher(secured.bootstrap, topics.predictions)
    wait_for(lambda: watcher.end() >= 300, 120, 0.05)
    watcher.close()
    kill_hard(process)
    done = subprocess.run(
        command(secured.bootstrap, topics, *flags, "--idle-timeout-s", "3"),
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    ids = [p["id"] for p in json_records(secured.bootstrap, topics.predictions)]
    assert sorted(ids) == sorted(e["id"] for e in events)  # read_committed: each exactly once


def misconfigured(secured: Secured, tmp_path: Path) -> list[tuple[str, list[str], str]]:
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-the-password\n")
    other_ca = tmp_path / "other-ca.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=other",
         "-keyout", str(tmp_path / "other.key"), "-out", str(other_ca)],
        capture_output=True, check=True,
    )  # fmt: skip
    config = ["--config", str(secured.config)]
    return [
        (
            "a wrong password",
            [*config, "--sasl-password-file", str(wrong)],
            "refused the SASL SCRAM-SHA-512 login",
        ),
        (
            "an unknown user",
            [*config, "--sasl-username", "mallory"],
            "refused the SASL SCRAM-SHA-512 login of user 'mallory'",
        ),
        ("an untrusted certificate", [*config, "--ssl-cafile", str(other_ca)], "is not trusted"),
        ("a plaintext client on the TLS port", ["--bootstrap-servers", secured.bootstrap], "speaks TLS"),
        (
            "no client certificate",
            [*config, "--ssl-certfile", "", "--ssl-keyfile", ""],
            "wants a client certificate",
        ),
        ("a mechanism not offered", [*config, "--sasl-mechanism", "PLAIN"], "does not offer SASL PLAIN"),
        (
            "a missing password",
            [*config, "--sasl-password-file", str(tmp_path / "none")],
            "cannot read the SASL password",
        ),
    ]


@pytest.mark.parametrize("command_name", ["run", "score", "fit", "produce", "monitor"])
def test_each_misconfiguration_is_one_line_within_30_s(
    secured: Secured, tmp_path: Path, command_name: str
) -> None:
    topics = Topics.create(secured.bootstrap)
    for case, flags, words in misconfigured(secured, tmp_path):
        args = {
            "run": ["run", "--input-topic", topics.input, "--model-name", topics.model_name],
            "score": ["score", "--input-topic", topics.input, "--model-name", topics.model_name],
            "fit": ["fit", "--input-topic", topics.input, "--model-name", topics.model_name],
            "produce": ["produce", "--topic", topics.input, "--dataset", "phishing"],
            "monitor": ["monitor", "--metrics-topic", topics.input],
        }[command_name]
        done = cli(*args, *flags, timeout_s=30)
        lines = done.stderr.strip().splitlines()
        assert done.returncode != 0, (case, done.stderr)
        assert len(lines) == 1 and words in lines[0] and "Traceback" not in done.stderr, (case, lines)
        assert secured.password not in done.stderr


def test_acl_denials_are_start_up_errors_naming_topic_group_and_transactional_id(secured: Secured) -> None:
    topics = Topics.create(secured.bootstrap)
    send(secured.bootstrap, topics.input, phishing_events()[:10])
    config = ["--config", str(secured.config)]
    base = command(secured.bootstrap, topics, *config)

    def refusal(*flags: str) -> str:
        done = subprocess.run([*base, *flags], capture_output=True, text=True, timeout=30, check=False)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
        return lines[-1]

    # A predictions topic outside the user's ACLs.
    outside = unique_name("forbidden")
    assert f"predictions topic '{outside}': user 'app' is not authorized" in refusal(
        "--predictions-topic", outside
    )
    # A predictions topic the user may read but not write (the super user made it so).
    read_only = unique_name("sn-readonly")
    admin = KafkaAdminClient(**secured.superuser())
    admin.create_topics([NewTopic(read_only, 1, 1)])
    pattern = ResourcePattern(ResourceType.TOPIC, read_only)
    admin.create_acls(
        [ACL("User:app", "*", op, ACLPermissionType.DENY, pattern) for op in (ACLOperation.WRITE,)]
    )
    admin.close()
    assert f"predictions topic '{read_only}': user 'app' may not write it" in refusal(
        "--predictions-topic", read_only
    )
    # A consumer group outside the user's ACLs; a transactional id outside them.
    assert "may not use consumer group 'other-group'" in refusal("--group-id", "other-group")
    # The transactional ids stream-neuron-* are the user's; the super user denies this model's.
    admin = KafkaAdminClient(**secured.superuser())
    pattern = ResourcePattern(ResourceType.TRANSACTIONAL_ID, f"stream-neuron-{topics.model_name}")
    admin.create_acls([ACL("User:app", "*", ACLOperation.WRITE, ACLPermissionType.DENY, pattern)])
    admin.close()
    line = refusal("--guarantee", "exactly-once")
    assert f"may not use transactional id 'stream-neuron-{topics.model_name}'" in line


def test_acl_denials_end_score_and_fit_in_one_line(secured: Secured) -> None:
    """The scorers and ``fit`` on a cluster whose ACLs refuse them a group or a topic: one line each,
    naming what is refused, never a traceback (on either Kafka client)."""
    topics = Topics.create(secured.bootstrap)
    send(secured.bootstrap, topics.input, phishing_events()[:50])
    config = ["--config", str(secured.config)]
    trained = subprocess.run(
        command(secured.bootstrap, topics, *config, "--max-events", "50"),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    outside = unique_name("forbidden")
    cases = [
        (
            ["score", "--input-topic", topics.input, "--model-topic", topics.model, "--model-name",
             topics.model_name, "--group-id", "other-group", "--idle-timeout-s", "5"],
            "consumer group 'other-group'",
        ),
        (
            ["score", "--input-topic", topics.input, "--model-topic", topics.model, "--model-name",
             topics.model_name, "--predictions-topic", outside],
            f"predictions topic '{outside}': user 'app' is not authorized",
        ),
        (["fit", "--input-topic", outside, "--model-topic", topics.model], f"input topic '{outside}'"),
        (
            ["fit", "--input-topic", topics.input, "--model-topic", outside, "--model-name", "sn-fitted"],
            f"model topic '{outside}'",
        ),
    ]  # fmt: skip
    for args, words in cases:
        done = cli(*args, *config, timeout_s=40)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 1, (args, done.stderr[-2000:])
        assert lines and words in lines[-1] and "Traceback" not in done.stderr, (args, done.stderr[-2000:])
