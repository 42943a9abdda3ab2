"""The metrics port of ``run`` and ``score`` (``--metrics-port``): Prometheus's ``/metrics``, and the
probes an orchestrator asks, ``/healthz`` (liveness) and ``/readyz`` (readiness).

``/healthz`` is 200 while the loop polls: it fails (503) once the loop has not polled for
``--health-timeout-s`` (a wedged or paused loop; the server's own thread goes on answering). Kubernetes
restarts such a pod. ``/readyz`` is 200 once the process is connected, its model is loaded (or a new one
chosen) and its input positions are settled (for ``run``, its first poll from them; for ``score``, a
share of the requests assigned), and 503 with the reason before. It says whether to count the process
in, not whether to restart it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from stream_neuron.errors import OperatorError

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class Health:
    """What the probes answer, set by the loop: :meth:`beat` at every poll, :meth:`ready` once."""

    def __init__(self, stale_after_s: float) -> None:
        self.stale_after_s = stale_after_s
        self._last_beat = time.monotonic()  # start-up counts as alive for as long as a poll may take
        self._not_ready: str | None = "starting: connecting, loading the model"

    def beat(self) -> None:
        self._last_beat = time.monotonic()

    def set_ready(self, not_ready: str | None = None) -> None:
        """Ready (``None``), or not, and why."""
        self._not_ready = not_ready

    def liveness(self) -> str | None:
        """``None`` when alive, else why not."""
        quiet = time.monotonic() - self._last_beat
        if quiet > self.stale_after_s:
            return f"the loop has not polled for {quiet:.0f} s (--health-timeout-s {self.stale_after_s:g})"
        return None

    def readiness(self) -> str | None:
        """``None`` when ready, else why not."""
        return self._not_ready


class _Threading(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # probes every few seconds: no log line each
        pass


class MetricsServer:
    """``/metrics`` of ``registry``, ``/healthz`` and ``/readyz`` of ``health``, on a thread of its own."""

    def __init__(self, port: int, host: str, registry: CollectorRegistry, health: Health) -> None:
        self.health = health
        self._metrics = make_wsgi_app(registry)
        try:
            self._server = make_server(host, port, self._app, server_class=_Threading, handler_class=_Quiet)
        except OSError as error:
            raise OperatorError(
                f"cannot serve metrics on {host}:{port}: {error.strerror or error} (choose another "
                "--metrics-port, or --metrics-host)"
            ) from None
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-server", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def _app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path in ("/healthz", "/readyz"):
            problem = self.health.liveness() if path == "/healthz" else self.health.readiness()
            status = "200 OK" if problem is None else "503 Service Unavailable"
            start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
            return [f"{problem or 'ok'}\n".encode()]
        return self._metrics(environ, start_response)  # type: ignore[no-any-return]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
