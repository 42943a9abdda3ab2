"""``monitor --follow``: a live terminal view of the metrics topic (rich), with the cost trend."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from stream_neuron.tools.metrics_view import Malformed

SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: Iterable[float | None]) -> str:
    """The trend of ``values`` as block characters (lowest to highest); gaps for missing values."""
    points = list(values)
    known = [v for v in points if v is not None]
    if not known:
        return ""
    low, high = min(known), max(known)
    span = (high - low) or 1.0
    return "".join(
        " " if v is None else SPARKS[min(int((v - low) / span * (len(SPARKS) - 1)), len(SPARKS) - 1)]
        for v in points
    )


def view(record: dict[str, Any], losses: deque[float | None], accuracies: deque[float | None]) -> Group:
    """A cleaned record (``metrics_view.clean_record``) as a table; every cell is plain text, never
    markup."""
    title = Text(f"stream-neuron  model version {record.get('model_version')}")
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("window", justify="right")
    table.add_column("cumulative", justify="right")
    window, cumulative = record.get("window", {}), record.get("cumulative", {})

    def fmt(value: Any, digits: int = 4) -> Text:
        return Text(
            "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)
        )

    table.add_row("log loss", fmt(window.get("log_loss")), fmt(cumulative.get("log_loss")))
    table.add_row("accuracy", fmt(window.get("accuracy")), fmt(cumulative.get("accuracy")))
    table.add_row("events", fmt(window.get("events")), fmt(record.get("events")))
    table.add_row("labelled", "", fmt(record.get("labelled")))
    table.add_row("dead letters", "", fmt(record.get("dead_letters")))
    table.add_row("learning rate", fmt(record.get("learning_rate"), 6), "")
    table.add_row("weight norm", fmt(record.get("weight_norm")), "")
    table.add_row("diverging", fmt(record.get("diverging")), "")
    table.add_row("events/s", fmt(record.get("events_per_second"), 0), "")
    table.add_row("lag", fmt(record.get("lag")), "")
    labels = record.get("labels")
    if labels:
        table.add_row("pending questions", fmt(labels["pending"]), "")
        table.add_row("expired questions", "", fmt(labels["expired"]))
        table.add_row("unmatched answers", "", fmt(labels["unmatched_answers"]))
    trend = Text.assemble(
        ("log loss trend  ", "bold"), (sparkline(losses), "red"), "\n",
        ("accuracy trend  ", "bold"), (sparkline(accuracies), "blue"), "\n",
        Text(f"at {record.get('ts')}", "dim"),
    )  # fmt: skip
    if record.get("candidates"):
        return Group(table, candidates_table(record, fmt), trend)
    return Group(table, trend)


def candidates_table(record: dict[str, Any], fmt: Callable[..., Text]) -> Table:
    table = Table(title=Text("candidates (* champion)"), title_justify="left")
    for name in ("", "learning rate", "optimizer", "window log loss", "cumulative log loss",
                 "cumulative accuracy", "diverging"):  # fmt: skip
        table.add_column(name, justify="left" if name in ("", "optimizer") else "right")
    for c in record["candidates"]:
        table.add_row(
            Text("*" if c["champion"] else ""),
            fmt(c["learning_rate"], 6),
            Text(c["optimizer"] or "-"),
            fmt(c["window"]["log_loss"]),
            fmt(c["cumulative"]["log_loss"]),
            fmt(c["cumulative"]["accuracy"]),
            Text("yes" if c["diverging"] else "no"),
        )
    return table


def follow(records: Iterable[dict[str, Any] | Malformed], history: int = 60) -> None:
    losses: deque[float | None] = deque(maxlen=history)
    accuracies: deque[float | None] = deque(maxlen=history)
    console = Console()
    if not console.is_terminal:  # a log (docker compose logs): one plain table a record
        from stream_neuron.tools.monitor import format_metrics

        for record in records:
            console.print(format_metrics(record), end="\n\n", markup=False, highlight=False)
        return
    with Live(console=console, auto_refresh=False) as live:
        for record in records:
            if isinstance(record, Malformed):
                console.print(Text(f"a malformed metrics record ({record})", "yellow"))
                continue
            losses.append(record.get("window", {}).get("log_loss"))
            accuracies.append(record.get("window", {}).get("accuracy"))
            live.update(view(record, losses, accuracies), refresh=True)
