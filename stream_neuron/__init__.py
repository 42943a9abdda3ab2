"""stream-neuron: an online-learning logistic neuron that lives on a Kafka stream."""

from stream_neuron.neuron.logistic import LogisticNeuron
from stream_neuron.neuron.perceptron import Perceptron

__all__ = ["LogisticNeuron", "Perceptron", "__version__"]
__version__ = "0.1.0"
