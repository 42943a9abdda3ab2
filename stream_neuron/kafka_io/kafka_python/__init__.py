"""The kafka-python backend: every port on kafka-python (pure Python), with its two fixes
(``fencing_fix``, ``header_keys_fix``) installed wherever it makes a client. ``--kafka-client
kafka-python``."""

from __future__ import annotations

from stream_neuron.kafka_io.assembly import AssembledBackend
from stream_neuron.kafka_io.kafka_python.admin import KafkaPythonAdmin
from stream_neuron.kafka_io.kafka_python.errors import translated_function
from stream_neuron.kafka_io.kafka_python.group_input import GroupInput
from stream_neuron.kafka_io.kafka_python.input import InputConsumer, read_ranges
from stream_neuron.kafka_io.kafka_python.sender import KafkaPythonSender
from stream_neuron.kafka_io.kafka_python.tail import KafkaPythonTopicTail
from stream_neuron.kafka_io.kafka_python.transactions import KafkaPythonTransactions
from stream_neuron.kafka_io.kafka_python.writer import KafkaPythonStreamWriter, write_records

BACKEND = AssembledBackend(
    name="kafka-python",
    input_class=InputConsumer,
    read_ranges_function=translated_function(read_ranges),
    group_input_class=GroupInput,
    sender_class=KafkaPythonSender,
    transactions_class=KafkaPythonTransactions,
    tail_class=KafkaPythonTopicTail,
    admin_class=KafkaPythonAdmin,
    write_records_function=translated_function(write_records),
    stream_writer_class=KafkaPythonStreamWriter,
)
