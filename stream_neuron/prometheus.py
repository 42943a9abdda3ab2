"""``run`` and ``score`` with ``--metrics-port N``: their figures for a Prometheus scrape
(prometheus-client); the server itself, with the health probes, is ``metrics_server.py``."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from stream_neuron.processor import Processor


class PrometheusExporter:
    """Counters for this process's traffic; gauges for the model and its latest metrics window."""

    def __init__(self, model_name: str) -> None:
        self.registry = CollectorRegistry()
        labels = ["model"]
        self.events = Counter(
            "stream_neuron_events", "input records consumed", labels, registry=self.registry
        )
        self.labelled = Counter(
            "stream_neuron_labelled_events", "labelled events learned from", labels, registry=self.registry
        )
        self.dead_letters = Counter(
            "stream_neuron_dead_letters", "input records dead-lettered", labels, registry=self.registry
        )
        self.window_log_loss = Gauge(
            "stream_neuron_window_log_loss",
            "prequential log loss of the last metrics window",
            labels,
            registry=self.registry,
        )
        self.window_accuracy = Gauge(
            "stream_neuron_window_accuracy",
            "prequential accuracy of the last metrics window",
            labels,
            registry=self.registry,
        )
        self.learning_rate = Gauge(
            "stream_neuron_learning_rate", "rate of the next update", labels, registry=self.registry
        )
        self.lag = Gauge(
            "stream_neuron_lag",
            "input records behind the end of the input topic",
            labels,
            registry=self.registry,
        )
        self.drifts = Counter(
            "stream_neuron_drifts",
            "drifts detected in the prequential errors",
            labels,
            registry=self.registry,
        )
        self.diverging = Gauge(
            "stream_neuron_diverging",
            "1 while the last metrics window flagged the model diverging",
            labels,
            registry=self.registry,
        )
        self.last_metrics = Gauge(
            "stream_neuron_last_metrics_timestamp_seconds",
            "when the last metrics record was made (seconds since the epoch)",
            labels,
            registry=self.registry,
        )
        self.model_version = Gauge(
            "stream_neuron_model_version", "updates the model has made", labels, registry=self.registry
        )
        self.snapshot_version = Gauge(
            "stream_neuron_snapshot_version",
            "the model version of the newest snapshot written (what scorers should serve)",
            labels,
            registry=self.registry,
        )
        racing = ["model", "candidate", "learning_rate"]
        self.candidate_gauges = {
            (section, key): Gauge(
                f"stream_neuron_candidate_{section}_{key}",
                f"a learning-rate candidate's prequential {key.replace('_', ' ')} ({section})",
                racing,
                registry=self.registry,
            )
            for section in ("window", "cumulative")
            for key in ("log_loss", "accuracy")
        }
        self.candidate_diverging = Gauge(
            "stream_neuron_candidate_diverging",
            "1 while a candidate is flagged diverging (it may not be champion)",
            racing,
            registry=self.registry,
        )
        self.candidate_champion = Gauge(
            "stream_neuron_candidate_champion",
            "1 for the candidate whose predictions are published",
            racing,
            registry=self.registry,
        )
        self.model_name = model_name
        self._seen = (0, 0, 0, 0)

    def baseline(self, processor: Processor) -> None:
        """Counters count this process's traffic: totals restored from a snapshot are not new."""
        self._seen = _totals(processor)

    def observe(self, processor: Processor, lag: int | None) -> None:
        """Bring the figures up to date after a processing step."""
        window = processor.last_window
        name = self.model_name
        seen = _totals(processor)
        counters = (self.events, self.labelled, self.dead_letters, self.drifts)
        for counter, now, before in zip(counters, seen, self._seen, strict=True):
            if now > before:
                counter.labels(name).inc(now - before)
        self._seen = seen
        model = processor.model
        if model is not None:
            self.learning_rate.labels(name).set(model.learning_rate)
            self.model_version.labels(name).set(model.n_updates)
            self.snapshot_version.labels(name).set(processor.snapshot_version)
        if lag is not None:
            self.lag.labels(name).set(lag)
        if processor.last_record_at is not None:
            self.last_metrics.labels(name).set(processor.last_record_at)
            self.diverging.labels(name).set(float(processor.last_diverging))
        if window is not None:
            for gauge, key in ((self.window_log_loss, "log_loss"), (self.window_accuracy, "accuracy")):
                value = window.get(key)
                if isinstance(value, int | float):
                    gauge.labels(name).set(value)

        if processor.last_candidates is not None:
            self._observe_candidates(processor.last_candidates)

    def _observe_candidates(self, candidates: list[dict[str, Any]]) -> None:
        for j, candidate in enumerate(candidates):
            labels = (self.model_name, str(j), f"{candidate['learning_rate']:g}")
            for (section, key), gauge in self.candidate_gauges.items():
                value = candidate[section][key]
                if isinstance(value, int | float):
                    gauge.labels(*labels).set(value)
            self.candidate_diverging.labels(*labels).set(float(candidate["diverging"]))
            self.candidate_champion.labels(*labels).set(float(candidate["champion"]))


def _totals(processor: Processor) -> tuple[int, int, int, int]:
    """What the counters count: events, labelled events, dead letters, drifts (restored ones too)."""
    metrics = processor.metrics
    drifts = metrics.drift.count if metrics.drift is not None else 0
    return metrics.cumulative.events, metrics.cumulative.labelled, metrics.dead_letters, drifts


class ScorerExporter:
    """A scorer replica's figures: requests, predictions, dead letters, the model version it serves,
    swaps and refused snapshots, and how long a poll's requests take to score."""

    def __init__(self, model_name: str) -> None:
        self.registry = CollectorRegistry()
        labels = ["model"]

        def counter(name: str, what: str) -> Counter:
            return Counter(f"stream_neuron_scorer_{name}", what, labels, registry=self.registry)

        self.requests = counter("requests", "requests consumed")
        self.predictions = counter("predictions", "predictions published")
        self.dead_letters = counter("dead_letters", "requests dead-lettered")
        self.swaps = counter("swaps", "newer snapshots swapped in")
        self.refused = counter("snapshots_refused", "snapshots not used (unreadable, or another model)")
        self.version = Gauge(
            "stream_neuron_scorer_model_version", "the model version served", labels, registry=self.registry
        )
        self.latency = Histogram(
            "stream_neuron_scorer_latency_seconds",
            "from a poll's return to its predictions handed to the producer (an observation a poll)",
            labels,
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
        )
        self.model_name = model_name

    def scored(self, requests: int, predictions: int, dead_letters: int, seconds: float) -> None:
        name = self.model_name
        self.requests.labels(name).inc(requests)
        self.predictions.labels(name).inc(predictions)
        self.dead_letters.labels(name).inc(dead_letters)
        if requests:
            self.latency.labels(name).observe(seconds)

    def served(self, version: int, swapped: bool = False, refused: bool = False) -> None:
        name = self.model_name
        self.version.labels(name).set(version)
        if swapped:
            self.swaps.labels(name).inc()
        if refused:
            self.refused.labels(name).inc()
