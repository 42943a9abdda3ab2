"""The metrics port's settings, shared by ``run`` and ``score``: one definition of the flags."""

from __future__ import annotations

from pydantic import BaseModel, Field


class MetricsPortOptions(BaseModel):
    """A base of ``config.Settings`` and ``command_config.ScoreSettings``."""

    metrics_port: int | None = Field(
        None, ge=1, le=65535, description="serve Prometheus metrics, /healthz and /readyz on this port"
    )
    metrics_host: str = Field(
        "127.0.0.1", description="address of the Prometheus endpoint (0.0.0.0 in a container)"
    )
    health_timeout_s: float = Field(
        60.0,
        gt=0,
        allow_inf_nan=False,
        description="/healthz fails once the loop has not polled for S seconds",
    )
