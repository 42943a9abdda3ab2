"""The neuron layer: numpy maths only (no Kafka, no JSON, no config).

``MODEL_KINDS`` is the one registry of model kinds: the command line's ``--model`` choices, the
snapshots' ``kind`` and the stream's behaviour all come from the class registered here.
"""

from stream_neuron.neuron.linear import LinearNeuron
from stream_neuron.neuron.logistic import LogisticNeuron
from stream_neuron.neuron.perceptron import Perceptron
from stream_neuron.neuron.scaler import OnlineStandardScaler
from stream_neuron.neuron.schedules import Schedule

MODEL_KINDS: dict[str, type[LinearNeuron]] = {cls.kind: cls for cls in (LogisticNeuron, Perceptron)}

__all__ = ["MODEL_KINDS", "LinearNeuron", "LogisticNeuron", "OnlineStandardScaler", "Perceptron", "Schedule"]
