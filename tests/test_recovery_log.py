"""What a run says while it recovers from a failed transaction: one warning when the episode begins,
a reminder with the latest error while it goes on, one line when it is over; the attempts in
between at debug level (the broker may be away for minutes, an attempt a second)."""

from __future__ import annotations

import logging

import pytest

from stream_neuron import runner


def test_a_recovery_that_keeps_failing_says_why_every_minute(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(runner.time, "monotonic", lambda: clock[0])
    recovery = runner.Recovery()
    with caplog.at_level(logging.WARNING, logger="stream_neuron"):
        for second in range(150):  # an attempt a second, the error changing on the way
            clock[0] = 1000.0 + second
            recovery.failed(RuntimeError("timed out" if second < 100 else "unknown partition"))
        recovery.succeeded()
    assert [r.getMessage() for r in caplog.records] == [
        "recovery failed (timed out): retrying every 1 s until the broker answers",
        "recovery still failing after 60 s (61 attempts; the latest: timed out)",
        "recovery still failing after 120 s (121 attempts; the latest: unknown partition)",
        "recovered after 149 s (150 attempts failed): resuming from the committed snapshot",
    ]
