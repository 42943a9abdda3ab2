"""The neuron layer: numpy maths only (no Kafka, no JSON, no config)."""

from stream_neuron.neuron.linear import LinearNeuron
from stream_neuron.neuron.logistic import LogisticNeuron
from stream_neuron.neuron.perceptron import Perceptron
from stream_neuron.neuron.scaler import OnlineStandardScaler
from stream_neuron.neuron.schedules import Schedule

__all__ = ["LinearNeuron", "LogisticNeuron", "OnlineStandardScaler", "Perceptron", "Schedule"]
