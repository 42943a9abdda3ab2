"""The settings of drift detection on ``run``'s prequential error stream: one definition of the flags,
their defaults (river's ``drift.ADWIN`` and ``drift.PageHinkley`` defaults) and their words."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from stream_neuron.drift import Detector, PageHinkley, new_adwin


class DriftOptions(BaseModel):
    """A base of ``config.Settings``."""

    drift_detector: Literal["adwin", "page-hinkley", "none"] = Field(
        "adwin", description="watch the prequential errors (1 wrong, 0 right) for a change: river's ADWIN or "
        "PageHinkley"
    )  # fmt: skip
    on_drift: Literal["none", "reset-champion"] = Field(
        "none",
        description="at a detection: nothing more than the log line, metric and counter; or, with "
        "candidates, a new race: the best over the next --champion-window labelled events is champion",
    )
    adwin_delta: float = Field(0.002, gt=0, lt=1, allow_inf_nan=False, description="ADWIN: significance")
    adwin_clock: int = Field(32, ge=1, description="ADWIN: test for a change every N errors")
    adwin_max_buckets: int = Field(5, ge=2, le=1000, description="ADWIN: buckets of each size kept")
    adwin_min_window_length: int = Field(5, ge=1, description="ADWIN: the shortest sub-window tested")
    adwin_grace_period: int = Field(10, ge=0, description="ADWIN: no test before N errors")
    page_hinkley_min_instances: int = Field(30, ge=1, description="Page-Hinkley: no test before N errors")
    page_hinkley_delta: float = Field(0.005, ge=0, allow_inf_nan=False, description="Page-Hinkley: delta")
    page_hinkley_threshold: float = Field(
        50.0, gt=0, allow_inf_nan=False, description="Page-Hinkley: the threshold (lambda)"
    )
    page_hinkley_alpha: float = Field(
        1 - 0.0001, gt=0, le=1, allow_inf_nan=False, description="Page-Hinkley: the forgetting factor"
    )
    page_hinkley_mode: Literal["up", "down", "both"] = Field(
        "both", description="Page-Hinkley: a rise of the error rate, a fall, or both"
    )

    def new_detector(self) -> Detector | None:
        """A fresh detector of these settings (``None``: ``--drift-detector none``)."""
        if self.drift_detector == "adwin":
            return new_adwin(
                self.adwin_delta, self.adwin_clock, self.adwin_max_buckets, self.adwin_min_window_length,
                self.adwin_grace_period,
            )  # fmt: skip
        if self.drift_detector == "page-hinkley":
            return PageHinkley(
                self.page_hinkley_min_instances, self.page_hinkley_delta, self.page_hinkley_threshold,
                self.page_hinkley_alpha, self.page_hinkley_mode,
            )  # fmt: skip
        return None
