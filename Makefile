# stream-neuron: the two commands that matter are `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: demo test lint bench install system-deps broker-start broker-stop clean

# The compiled kernels are built by the install: a change to their sources installs again.
$(BIN)/.installed: pyproject.toml setup.py $(wildcard stream_neuron/*.c stream_neuron/*.h stream_neuron/neuron/*.c stream_neuron/neuron/*.h)
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
	$(BIN)/lint-imports

# Every broker test (marked kafka) runs on both backends: the whole suite on librdkafka (the default),
# then the broker tests again on kafka-python. test_kafka_broker.py checks the broker itself, once.
test: install broker-start lint
	$(BIN)/python -m pytest
	STREAM_NEURON_KAFKA_CLIENT=kafka-python $(BIN)/python -m pytest -m kafka --ignore=tests/test_kafka_broker.py

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
