"""Features by name or by position into a fixed-order row, and labels into the model's domain."""

from __future__ import annotations

import math
from operator import itemgetter

from stream_neuron.contracts import InputEvent
from stream_neuron.decode import BadEventError
from stream_neuron.neuron import LinearNeuron
from stream_neuron.neuron.numeric import FloatArray


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

    def fix_from(self, event: InputEvent) -> None:
        """Fix the schema from the first valid event (no-op once fixed)."""
        if self.fixed:
            return
        if isinstance(event.features, dict):
            if not event.features:
                raise BadEventError('"features" is empty', "InvalidFeatures")
            self.__init__(tuple(event.features))  # type: ignore[misc]
        else:
            if not event.features:
                raise BadEventError('"features" is empty', "InvalidFeatures")
            self.__init__(None, len(event.features))  # type: ignore[misc]

    def fill_row(self, event: InputEvent, row: FloatArray) -> None:
        """Write the event's features into ``row`` in schema order, or raise :class:`BadEventError`."""
        features = event.features
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
            raise BadEventError(
                f'unknown feature "{unknown[0]}" (expected: {", ".join(index)})', "UnknownFeature"
            )
        if len(features) != n:
            missing = next(name for name in index if name not in features)
            raise BadEventError(f'missing feature "{missing}"', "MissingFeature")
        for name, value in features.items():
            row[index[name]] = value


def label_of(label: bool | float | None, model: type[LinearNeuron]) -> float:
    """The event's label as the model's float (NaN when absent), or :class:`BadEventError` when the
    model does not accept it."""
    if label is None:
        return math.nan
    try:
        return model.check_label(float(label))
    except ValueError:
        raise BadEventError(
            f"label must be {model.label_domain} for the {model.kind} model, got {label!r}", "InvalidLabel"
        ) from None
