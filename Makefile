# `make run`: set up .venv, obtain the data, run the whole pipeline.   `make test`: the tests
# (they also install the optional extras: Ray, to test the Ray engine on a local Ray, open_clip, and onnx).
# Offline, name a local copy of the data set: make run DATA_FROM=../shared/datasets/vehicles
# `make plots`: `dvc plots show` as one self-contained page that works without internet.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA_FROM ?=
# Vega, Vega-Lite and Vega-Embed from the npm registry, inlined into the plots page
VEGA := .vega
VEGA_PACKAGES := vega@5.33.1 vega-lite@5.23.0 vega-embed@6.29.0
VEGA_JS := vega/build/vega.min.js vega-lite/build/vega-lite.min.js vega-embed/build/vega-embed.min.js

.PHONY: run setup data test plots
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

# the tests also run the optional extras: the Ray engine on a local Ray, open_clip's models, ONNX
$(VENV)/.installed-extras: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[ray,open_clip,onnx]'
	touch $@

test: setup $(VENV)/.installed-extras
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest

$(VEGA)/offline.html: Makefile
	@command -v npm >/dev/null || { echo "make plots: needs Node.js's npm, to fetch Vega (Debian: apt-get install npm)" >&2; exit 1; }
	npm install --silent --no-audit --no-fund --no-save --prefix $(VEGA) $(VEGA_PACKAGES)
	{ printf '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n{refresh_tag}\n<title>DVC plots</title>\n'; \
	  for js in $(VEGA_JS); do printf '<script>\n'; cat $(VEGA)/node_modules/$$js; printf '\n</script>\n'; done; \
	  printf '<style>table { border-spacing: 15px; }</style>\n</head>\n<body>\n{plot_divs}\n</body>\n</html>\n'; \
	} > $@.tmp && mv $@.tmp $@

plots: setup $(VEGA)/offline.html
	PATH="$(CURDIR)/$(BIN):$$PATH" dvc plots show --html-template $(VEGA)/offline.html $(DVC_PLOTS_ARGS)
