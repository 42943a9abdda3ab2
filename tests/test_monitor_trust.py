"""``monitor`` prints what anyone who can write the metrics topic wrote: terminal escape codes, Rich
markup and wrong types must come out as plain text or as "malformed", never act or crash."""

from __future__ import annotations

import json
from collections import deque
from typing import Any

import pytest
from rich.console import Console

from stream_neuron.tools.curve import learning_curve
from stream_neuron.tools.live import follow, view
from stream_neuron.tools.metrics_view import Malformed, clean_record
from stream_neuron.tools.monitor import format_metrics

GOOD = {
    "model_version": 3, "events": 10, "labelled": 9, "dead_letters": 1,
    "window": {"events": 10, "log_loss": 0.5, "accuracy": 0.7},
    "cumulative": {"log_loss": 0.5, "accuracy": 0.7},
    "learning_rate": 0.05, "weight_norm": 1.0, "events_per_second": 10.0, "lag": 0,
    "ts": "2026-11-29T12:00:00Z",
}  # fmt: skip

RACER = {
    "learning_rate": 0.1, "optimizer": "sgd", "window": {"log_loss": 0.3, "accuracy": 0.9},
    "cumulative": {"log_loss": 0.3, "accuracy": 0.9}, "diverging": False, "champion": True,
}  # fmt: skip

HOSTILE_TEXT = [
    "\x1b[2J\x1b[H",  # clear the screen
    "\x1b]0;pwned\x07",  # set the window title
    "\x1b]52;c;ZWNobyBoaQ==\x07",  # write the clipboard
    "[bold red]alarm[/]",  # Rich markup
    "[link=file:///etc/passwd]click[/link]",
    "\r\nfake line",
    "\u202eevil",  # right-to-left override
    "x" * 10_000,
]


def encoded(record: Any) -> bytes:
    return json.dumps(record).encode()


@pytest.mark.parametrize("text", HOSTILE_TEXT)
def test_text_fields_come_out_plain(text: str) -> None:
    racing = {"candidates": [RACER | {"optimizer": text}], "champion": 0, "champion_changes": 0}
    record = clean_record(encoded(GOOD | {"ts": text} | racing))
    assert not isinstance(record, Malformed)
    table = format_metrics(record)
    assert "\x1b" not in table and "\x07" not in table and "\r" not in table and "\u202e" not in table
    assert "[" not in table and len(table) < 2000
    assert "* champion: candidate 0" in table
    console = Console(record=True, width=100, force_terminal=True)
    console.print(view(record, deque([0.5]), deque([0.7])))
    rendered = console.export_text(styles=False)
    assert "\x1b]" not in rendered and "\x07" not in rendered and "\u202e" not in rendered


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (encoded(GOOD | {"events": "ten"}), "events is not a number"),
        (encoded(GOOD | {"lag": "\x1b[2J"}), "lag is not a number"),
        (encoded(GOOD | {"learning_rate": True}), "learning_rate is not a number"),
        (encoded(GOOD | {"window": {"log_loss": "[red]x[/]"}}), "window.log_loss is not a number"),
        (encoded(GOOD | {"window": [1, 2]}), "window is not an object"),
        (b'{"events": NaN}', "events is not a number"),
        (encoded([GOOD]), "not a JSON object"),
        (b"\xff\xfe", "not JSON"),
        (b"", "not JSON"),
        (encoded({"hello": "world"}), "no event count"),
        (encoded(GOOD | {"candidates": "\x1b[2J"}), "candidates is not a list"),
        (encoded(GOOD | {"candidates": [{"learning_rate": "fast"}]}), "a candidate has no learning rate"),
        (encoded(GOOD | {"candidates": [RACER | {"window": {"log_loss": "x"}}]}), "candidate's window"),
        (encoded(GOOD | {"candidates": [RACER], "champion": 1, "champion_changes": 0}), "champion is not"),
        (encoded(GOOD | {"candidates": [RACER], "champion": 0, "champion_changes": -1}), "champion_changes"),
        (encoded(GOOD | {"candidates": [RACER] * 65, "champion": 0, "champion_changes": 0}), "1 to 64"),
    ],
)
def test_a_malformed_record_is_shown_as_malformed(value: bytes, why: str) -> None:
    record = clean_record(value)
    assert isinstance(record, Malformed) and why in record
    assert format_metrics(record) == f"a malformed metrics record ({record})"


def test_follow_and_the_curve_carry_on_past_malformed_records(capsys: pytest.CaptureFixture[str]) -> None:
    records = [clean_record(v) for v in (encoded(GOOD), b"junk", encoded(GOOD | {"events": 20}), encoded(7))]
    follow(iter(records))
    out = capsys.readouterr().out
    assert out.count("model version") == 2 and out.count("a malformed metrics record") == 2
    assert learning_curve(records).events == [10, 20]
