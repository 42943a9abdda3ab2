"""The settings of features as producers send them (``--features open|hashed``), shared by ``run``
and ``fit``: one definition of the flags, their defaults and their words."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

FeatureMode = Literal["fixed", "open", "hashed"]


class FeatureOptions(BaseModel):
    """A base of the commands' settings (``config.Settings``, ``command_config.FitSettings``)."""

    features: FeatureMode = Field(
        "fixed",
        description="fixed: one numeric vector; open: any features by name, strings one-hot; hashed: "
        "the hashing trick",
    )
    max_features: int = Field(
        100_000, ge=1, description="open: the most feature names (hashed: the 2^B buckets bound it)"
    )
    hash_bits: int = Field(20, ge=1, le=30, description="hashed: 2^B buckets")
    hash_seed: int = Field(0, ge=0, le=2**32 - 1, description="hashed: river's FeatureHasher seed")
    max_feature_name_bytes: int = Field(
        256, ge=1, le=100_000, description="open, hashed: longer names or string values are refused"
    )

    def check_feature_names(self, feature_names: tuple[str, ...] | None) -> None:
        """``ValueError`` when ``--feature-names`` is given with open or hashed features."""
        if self.features != "fixed" and feature_names is not None:
            raise ValueError(
                f"--feature-names fixes one numeric vector: with --features {self.features} the events "
                "name their own features (drop --feature-names)"
            )
