"""The alert rules that ship with the component (deploy/prometheus/alerts.yml), checked and unit-tested
by Prometheus's own promtool: every rule firing on the series it watches, and not firing on the
healthy ones beside it. promtool comes with Debian's prometheus package (deploy/install-system-deps);
without it the test fails, it does not skip."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

RULES = Path(__file__).resolve().parent.parent / "deploy" / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    assert tool is not None, "promtool is missing: run deploy/install-system-deps (Debian's prometheus)"
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=120, check=False, cwd=RULES)


def test_the_rules_are_valid() -> None:
    done = promtool("check", "rules", "alerts.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_rule_fires_when_it_should_and_only_then() -> None:
    done = promtool("test", "rules", "alerts.test.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_rule_is_tested_and_says_what_to_do() -> None:
    rules = [
        r for group in yaml.safe_load((RULES / "alerts.yml").read_text())["groups"] for r in group["rules"]
    ]
    tests = yaml.safe_load((RULES / "alerts.test.yml").read_text())["tests"]
    evaluated = [case for test in tests for case in test["alert_rule_test"]]
    for rule in rules:
        cases = [case for case in evaluated if case["alertname"] == rule["alert"]]
        assert any(case["exp_alerts"] for case in cases), f"{rule['alert']} is never seen firing"
        assert any(not case["exp_alerts"] for case in cases), f"{rule['alert']} is never seen quiet"
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
