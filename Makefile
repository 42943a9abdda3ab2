# stream-neuron: the two commands that matter are `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: demo test lint bench install system-deps broker-start broker-stop clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,dev]'
	touch $@

install: $(BIN)/.installed

system-deps:
	deploy/install-system-deps

broker-start: system-deps
	@if [ -z "$$KAFKA_BOOTSTRAP_SERVERS" ]; then deploy/local-kafka start; fi

broker-stop:
	deploy/local-kafka stop

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The tests of our Kafka clients again with librdkafka (--kafka-client confluent); test_kafka_broker.py
# checks the broker itself, with kafka-python.
CONFLUENT_TESTS := tests/test_stream_end_to_end.py tests/test_exactly_once.py tests/test_stream_lifecycle.py \
	tests/test_poison_stream.py tests/test_snapshot_recovery.py tests/test_stream_bad_input.py \
	tests/test_operations.py tests/test_secured_cluster.py tests/test_delayed_labels_stream.py \
	tests/test_scorers.py tests/test_fit.py tests/test_operator_tools.py

test: install broker-start lint
	$(BIN)/python -m pytest
	STREAM_NEURON_KAFKA_CLIENT=confluent $(BIN)/python -m pytest $(CONFLUENT_TESTS)

demo: install broker-start
	$(BIN)/python -m stream_neuron.tools.demo

# The peers (quix-streams pins its own pydantic) get a virtual environment of their own.
BENCH_VENV ?= .venv-bench

$(BENCH_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q --upgrade pip
	$(BENCH_VENV)/bin/pip install -q -e '.[bench]'
	touch $@

bench: $(BENCH_VENV)/.installed broker-start
	$(BENCH_VENV)/bin/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(BENCH_VENV) build *.egg-info
