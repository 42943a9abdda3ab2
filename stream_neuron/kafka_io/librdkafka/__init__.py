"""The librdkafka backend (confluent-kafka), the default: every port on librdkafka, which fetches and
sends in its own threads, outside the GIL. ``--kafka-client confluent``."""

from __future__ import annotations

from stream_neuron.kafka_io.assembly import AssembledBackend
from stream_neuron.kafka_io.librdkafka.admin import RdAdmin
from stream_neuron.kafka_io.librdkafka.errors import translated_function
from stream_neuron.kafka_io.librdkafka.group_input import RdGroupInput
from stream_neuron.kafka_io.librdkafka.input import RdInputConsumer, read_ranges
from stream_neuron.kafka_io.librdkafka.sender import RdSender
from stream_neuron.kafka_io.librdkafka.tail import RdTopicTail
from stream_neuron.kafka_io.librdkafka.transactions import RdTransactions
from stream_neuron.kafka_io.librdkafka.writer import RdStreamWriter, write_records

BACKEND = AssembledBackend(
    name="confluent",
    input_class=RdInputConsumer,
    read_ranges_function=translated_function(read_ranges),
    group_input_class=RdGroupInput,
    sender_class=RdSender,
    transactions_class=RdTransactions,
    tail_class=RdTopicTail,
    admin_class=RdAdmin,
    write_records_function=translated_function(write_records),
    stream_writer_class=RdStreamWriter,
)
