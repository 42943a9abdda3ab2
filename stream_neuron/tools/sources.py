"""Event sources for ``stream-neuron produce``: river's bundled datasets, synthetic data, files.

Each source yields input events (dicts following the input contract) or, for a file row it cannot
read, a :class:`BadRow` that the producer reports and skips.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stream_neuron.errors import OperatorError


@dataclass(frozen=True)
class BadRow:
    line: int
    reason: str


Event = dict[str, Any]
DATASET_SIZES = {"phishing": 1_250, "bananas": 5_300}


def river_dataset(name: str) -> Iterator[Event]:
    """river's bundled Phishing (1,250 events, 9 features) or Bananas (5,300 events, 2 features)."""
    try:
        from river import datasets
    except ImportError as error:  # pragma: no cover - depends on the install
        raise OperatorError("the river datasets need river: pip install 'stream-neuron[datasets]'") from error
    loaders = {"phishing": datasets.Phishing, "bananas": datasets.Bananas}
    for i, (x, y) in enumerate(loaders[name]()):  # type: ignore[no-untyped-call]
        yield {"id": f"{name}-{i}", "features": {k: float(v) for k, v in x.items()}, "label": int(bool(y))}


def synthetic(n: int, n_features: int, noise: float, drift_at: int | None, seed: int) -> Iterator[Event]:
    """A noisy linear concept; at ``drift_at`` the true weights change sign (concept drift)."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=n_features)
    names = [f"x{i}" for i in range(n_features)]
    for i in range(n):
        if drift_at is not None and i == drift_at:
            weights = -weights
        x = rng.normal(size=n_features)
        label = int(x @ weights + rng.normal(scale=noise) > 0)
        yield {"id": f"synthetic-{i}", "features": dict(zip(names, x.tolist(), strict=True)), "label": label}


def _number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not finite")
    return value


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # a JSON escape of a surrogate (perhaps paired)


def _unicode_problem(text: str) -> str | None:
    """Text read with ``surrogateescape`` (a byte that is not UTF-8 became a lone surrogate) or decoded
    from a JSON escape of a lone surrogate: either way it cannot be sent as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        bad = text[error.start]
        if 0xDC80 <= ord(bad) <= 0xDCFF:
            return f"not valid UTF-8 (byte 0x{ord(bad) - 0xDC00:02x})"
        return f"a lone surrogate \\u{ord(bad):04x} (not valid Unicode)"
    return None


def csv_file(path: Path, label_column: str | None) -> Iterator[Event | BadRow]:
    """A CSV with a header row; every column but ``label_column`` (and ``id``) is a feature. The header
    is checked here, before anything is sent."""
    with path.open(newline="", encoding="utf-8", errors="surrogateescape") as handle:
        header = next(csv.reader(handle), [])
    problem = _unicode_problem(",".join(header))
    if problem is not None:
        raise OperatorError(f"{path}: its header row is {problem}")
    if label_column is not None and label_column not in header:
        raise OperatorError(f"{path}: no column {label_column!r} (columns: {', '.join(header)})")
    return _csv_rows(path, label_column)


def _csv_rows(path: Path, label_column: str | None) -> Iterator[Event | BadRow]:
    with path.open(newline="", encoding="utf-8", errors="surrogateescape") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        feature_columns = [c for c in header if c not in (label_column, "id")]
        for row in reader:
            line = reader.line_num
            try:
                if None in row or any(row[c] is None for c in header):
                    raise ValueError(f"expected {len(header)} fields")
                problem = _unicode_problem("".join(row.values()))
                if problem is not None:
                    raise ValueError(problem)
                features = {c: _number(row[c]) for c in feature_columns}
                event: Event = {"id": row.get("id") or f"{path.name}:{line}", "features": features}
                if label_column is not None and row[label_column] != "":
                    event["label"] = int(_number(row[label_column]))
            except ValueError as error:
                yield BadRow(line, str(error))
                continue
            yield event


def _not_json(token: str) -> float:
    raise ValueError(f"{token} is not a JSON number")


def _finite_number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is beyond a float64")
    return value


def jsonl_file(path: Path) -> Iterator[Event | BadRow]:
    """JSON lines, one input event per line (checked only for being a JSON object with features, in
    strict JSON: Python's json reads NaN and Infinity, and turns 1e400 into infinity, which the events
    would be sent as; such a line is a bad row, as a CSV's non-finite value is)."""
    with path.open(encoding="utf-8", errors="surrogateescape") as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                problem = _unicode_problem(text)
                if problem is not None:
                    raise ValueError(problem)
                event = json.loads(text, parse_constant=_not_json, parse_float=_finite_number)
                if not isinstance(event, dict) or "features" not in event:
                    raise ValueError('not a JSON object with "features"')
                if _SURROGATE_ESCAPE.search(text):  # the only way to a lone surrogate in valid UTF-8
                    problem = _unicode_problem(json.dumps(event, ensure_ascii=False))
                    if problem is not None:
                        raise ValueError(f"a string holds {problem}")
            except ValueError as error:
                yield BadRow(line, str(error))
                continue
            yield event


JSON_LINES_SUFFIXES = (".jsonl", ".ndjson", ".json")


def events_file(path: Path, label_column: str | None) -> Iterator[Event | BadRow]:
    """The events of a file by its suffix: JSON lines (``.jsonl``, ``.ndjson``, ``.json``), else CSV."""
    if not path.is_file():
        raise OperatorError(f"no such file: {path}")
    if path.suffix in JSON_LINES_SUFFIXES:
        return jsonl_file(path)
    return csv_file(path, label_column)


def json_lines(path: Path) -> Iterator[tuple[int, bytes]] | None:
    """A JSON-lines file's lines as they are, each with its number (blank lines left out), for a reader
    that decodes them as record values; ``None`` for a file of another kind (by its suffix)."""
    if not path.is_file():
        raise OperatorError(f"no such file: {path}")
    if path.suffix not in JSON_LINES_SUFFIXES:
        return None
    return _numbered_lines(path)


def _numbered_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as handle:
        for line, raw in enumerate(handle, start=1):
            if raw.strip():
                yield line, raw


def questions_and_answers(events: Iterator[Event | BadRow], delay: int) -> Iterator[Event | BadRow]:
    """Labelled events as questions (id and features, no label) and answers (id and label), in the
    order river's ``stream.simulate_qa(dataset, moment=None, delay=delay)`` gives: the answer to event
    ``i`` comes just before the question of event ``i + delay`` (so ``delay=0`` answers each question
    at once), and the answers still due come at the end. An event without a label or an id is passed
    through as it is."""
    due: list[Event] = []
    for i, event in enumerate(events):
        while due and due[0]["due"] <= i:
            yield {"id": due[0]["id"], "label": due.pop(0)["label"]}
        if isinstance(event, BadRow) or event.get("label") is None or event.get("id") is None:
            yield event
            continue
        due.append({"id": event["id"], "label": event["label"], "due": i + delay})
        yield {k: v for k, v in event.items() if k != "label"}
    for answer in due:
        yield {"id": answer["id"], "label": answer["label"]}
