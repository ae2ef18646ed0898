PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CODE := $(wildcard src tests examples benchmarks)
# The frameworks suite (tests/frameworks) runs these, pinned, in their own environment: they
# bring the real litellm and heavy dependencies that the main .venv stays without.
FW_VENV := .venv-frameworks
FRAMEWORKS := dspy==3.4.1 "openai-agents[litellm]==0.24.0" "smolagents[litellm]==1.26.0" \
	litellm==1.110.2 fastapi==0.165.0 soundfile==0.14.0

.PHONY: install lint check test frameworks docs docs-serve demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"

lint: install
	$(BIN)/ruff check --fix $(CODE)
	$(BIN)/ruff format $(CODE)

check: install
	$(BIN)/ruff format --check $(CODE)
	$(BIN)/ruff check $(CODE)
	$(BIN)/mypy --strict src
	$(BIN)/mypy tests/typing
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

$(FW_VENV)/bin/python:
	$(PYTHON) -m venv $(FW_VENV)
	$(FW_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(FW_VENV)/bin/python -m pip install --quiet -e . $(FRAMEWORKS)

frameworks: $(FW_VENV)/bin/python

test: check frameworks
	$(BIN)/pytest

docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

demo: install
	$(BIN)/python examples/quickstart.py

bench: install
	$(BIN)/python -m pip install --quiet -e ".[bench]" || echo "LiteLLM extra not installed; benchmarking without it"
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(FW_VENV) .mypy_cache .pytest_cache .ruff_cache site
