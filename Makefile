# MedFlow: every target calls the same scripts CI runs. `make help` lists them.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
MODELS := models/.built-stamp
# The layers, bottom up (DESIGN.md); mypy checks them all, lint-imports their import directions.
PACKAGES := pipeline config messages privacy storage db workers intake api

.DEFAULT_GOAL := help
.PHONY: help install models demo test test-unit faults lint format bench bench-pipeline up image clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "MedFlow needs Python 3.11+ (set PYTHON=python3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP) ## create .venv and install MedFlow with its dev tools

$(MODELS): $(STAMP) $(wildcard models/build/*.py)
	$(BIN)/python -m models.build
	touch $@

models: $(MODELS) ## build the bundled ONNX models (deterministic, a few seconds)

demo: $(MODELS) ## the main job: 500 synthetic X-rays through the whole stack, then a summary
	$(BIN)/python -m bench.demo

test: $(MODELS) ## unit and integration tests (real Redis, Celery workers; SQLite, and Postgres if MEDFLOW_TEST_POSTGRES_URL is set)
	bash .ci/system-deps
	$(BIN)/python -m pytest tests

test-unit: $(MODELS) ## unit tests only (no services)
	$(BIN)/python -m pytest tests/unit

faults: $(MODELS) ## the fault suite: kills, Redis and Postgres outages, poison and hung images (also in make test)
	bash .ci/system-deps
	$(BIN)/python -m pytest tests/faults -m faults

lint: $(STAMP) ## ruff (lint + format check), mypy over every package, import-linter (the layers)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy $(PACKAGES)
	$(BIN)/lint-imports

format: $(STAMP) ## apply ruff's formatting and fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(MODELS) ## the benchmark: ceiling, naive baseline and end to end; writes bench/results/
	$(BIN)/python -m bench.run

bench-pipeline: $(MODELS) ## image side only: decode + preprocess ms per format, inference images/s per model
	$(BIN)/python -m bench.pipeline_speed

up: $(MODELS) ## the whole stack on this machine (Ctrl-C stops it)
	$(BIN)/medflow up

IMAGE ?= medflow:0.1.0
ENGINE ?= $(shell command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 && echo docker || echo podman)

image: ## build the container image (docker, else podman; BASE=... another base image, BUILD_FLAGS=... more flags)
	$(ENGINE) build -f deploy/Dockerfile -t $(IMAGE) $(if $(BASE),--build-arg BASE=$(BASE)) $(BUILD_FLAGS) .

clean: ## remove the venv, built models and local state
	rm -rf $(VENV) var models/*/[0-9]* $(MODELS)
