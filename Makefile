# `make run`: set up .venv, obtain the data, run the whole pipeline.   `make test`: the tests.
# Offline, name a local copy of the data set: make run DATA_FROM=../shared/datasets/vehicles

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA_FROM ?=

.PHONY: run setup data test
run: data
	PATH="$(CURDIR)/$(BIN):$$PATH" dvc repro

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

data: setup
	$(BIN)/python -m fewclip.fetch $(if $(DATA_FROM),--from "$(DATA_FROM)")

test: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest
