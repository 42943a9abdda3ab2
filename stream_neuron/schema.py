"""Features by name or by position into a fixed-order row, and labels into the model's domain."""

from __future__ import annotations

import math
from collections.abc import Sequence
from operator import itemgetter

from stream_neuron.decode import BadEventError, Event, shown
from stream_neuron.neuron import LinearNeuron
from stream_neuron.neuron.numeric import FloatArray
from stream_neuron.neuron.scaler import SAFE_FEATURE_ABS

MAX_NAME_CHARS = 200


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a feature (``None`` when it can): names end up in snapshots, metrics
    and operators' terminals, so they are short and printable."""
    if not name:
        return "a feature name is empty"
    if len(name) > MAX_NAME_CHARS:
        return f"a feature name is {len(name)} characters long, over the limit of {MAX_NAME_CHARS}"
    if not name.isprintable():
        return f"the feature name {shown(name)} holds control characters"
    return None


def check_names(names: Sequence[str]) -> None:
    """``ValueError`` naming the first unusable name."""
    for name in names:
        problem = name_problem(name)
        if problem is not None:
            raise ValueError(problem)


class FeatureSchema:
    """The feature order of a model: fixed by ``--feature-names``, or else by the first valid event
    (its names in order, or, for an array, only its length: then events must be arrays)."""

    def __init__(self, names: tuple[str, ...] | None = None, n_features: int | None = None) -> None:
        self.names = names
        self.n_features = len(names) if names is not None else n_features
        self._index = {name: i for i, name in enumerate(names)} if names is not None else None
        # One C call pulls every named feature in schema order (itemgetter of one name is not a tuple).
        self._pick = itemgetter(*names) if names is not None and len(names) > 1 else None

    @property
    def fixed(self) -> bool:
        return self.n_features is not None

    @staticmethod
    def proposed_by(event: Event) -> FeatureSchema:
        """The schema the first valid event would fix, or :class:`BadEventError` when its names
        cannot name features (so one bad event cannot poison every later one)."""
        features = event["features"]
        if not features:
            raise BadEventError('"features" is empty', "InvalidFeatures")
        if isinstance(features, list):
            return FeatureSchema(None, len(features))
        for name in features:
            problem = name_problem(name)
            if problem is not None:
                raise BadEventError(
                    f"{problem}: this event cannot fix the feature names", "InvalidFeatureName"
                )
        return FeatureSchema(tuple(features))

    def fill_row(self, event: Event, row: FloatArray) -> None:
        """Write the event's features into ``row`` in schema order, or raise :class:`BadEventError`.
        A number a float64 cannot hold (1e400, a 400-digit integer) is caught by the caller's check of
        the filled rows, or here when numpy refuses it."""
        try:
            self._fill(event["features"], row)
        except OverflowError:
            raise BadEventError("a feature is too large for a float64", "InvalidFeature") from None

    def _fill(self, features: dict[str, float | int] | list[float | int], row: FloatArray) -> None:
        n = self.n_features
        if isinstance(features, list):
            if len(features) != n:
                raise BadEventError(f"expected {n} features, got {len(features)}", "WrongFeatureCount")
            row[:] = features
            return
        if self._pick is not None and len(features) == n:
            try:
                row[:] = self._pick(features)
                return
            except KeyError:
                pass  # fall through to name the unknown or missing feature
        index = self._index
        if index is None:
            raise BadEventError(
                "features by name, but this model's features are positional (its first event was an "
                "array): send arrays, or set --feature-names",
                "NamedFeaturesUnexpected",
            )
        unknown = [name for name in features if name not in index]
        if unknown:
            expected = ", ".join(index) if len(index) <= 20 else ", ".join(list(index)[:20]) + ", ..."
            raise BadEventError(
                f"unknown feature {shown(unknown[0], 60)} (expected: {expected})", "UnknownFeature"
            )
        if len(features) != n:
            missing = next(name for name in index if name not in features)
            raise BadEventError(f"missing feature {shown(missing, 60)}", "MissingFeature")
        for name, value in features.items():
            row[index[name]] = value


def label_of(label: bool | float | None, model: type[LinearNeuron]) -> float:
    """The event's label as the model's float (NaN when absent), or :class:`BadEventError` when the
    model does not accept it."""
    if label is None:
        return math.nan
    try:
        return model.check_label(float(label))
    except (ValueError, OverflowError):
        raise BadEventError(
            f"label must be {model.label_domain} for the {model.kind} model, got {shown(label)}",
            "InvalidLabel",
        ) from None


def feature_bound(max_feature_abs: float | None) -> tuple[float, str]:
    """The largest feature magnitude taken, and the reason a larger one is refused: the operator's
    ``--max-feature-abs``, within what the scaler's statistics hold (:data:`SAFE_FEATURE_ABS`)."""
    if max_feature_abs is not None and max_feature_abs <= SAFE_FEATURE_ABS:
        return max_feature_abs, f"a feature is beyond +/-{max_feature_abs:g} (--max-feature-abs)"
    return SAFE_FEATURE_ABS, (
        f"a feature is beyond +/-{SAFE_FEATURE_ABS:.4g}, the largest the model's statistics hold "
        "(--max-feature-abs narrows this)"
    )
