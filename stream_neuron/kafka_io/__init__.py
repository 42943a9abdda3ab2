"""The Kafka I/O layer (kafka-python): topics, the input consumer, the output producer, snapshots.

It knows Kafka and nothing of the maths: records in and out are plain tuples (``stream_neuron.records``).
"""
