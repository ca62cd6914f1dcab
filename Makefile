# The two commands the README starts with: `make up` and `make test`.
# Each creates .venv and installs what it needs, so a fresh clone works.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CHROMIUM := /usr/bin/chromium
PLOTLY_CARTESIAN := src/chatlake/app/vendor/plotly-cartesian.min.js

.PHONY: up test test-fast bench proto lint clean

up: $(VENV)/.installed $(PLOTLY_CARTESIAN).sha256
	$(BIN)/chatlake up

test: $(VENV)/.installed-dev $(CHROMIUM) $(PLOTLY_CARTESIAN).sha256
	CHATLAKE_CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest -q -p no:cacheprovider

# Everything but the browser tests, for a quick loop while developing.
test-fast: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not browser"

bench: $(VENV)/.installed-dev $(PLOTLY_CARTESIAN).sha256
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/storage.py
	$(BIN)/python benchmarks/dedupe.py
	$(BIN)/python benchmarks/client_overhead.py
	$(BIN)/python benchmarks/app_overhead.py
	$(BIN)/python benchmarks/app_poll.py
	$(BIN)/python benchmarks/analytics.py

# Regenerates the gRPC and protobuf modules from the .proto files in the package.
proto: $(VENV)/.installed-dev
	$(BIN)/python -m chatlake.protogen

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

$(VENV)/.installed: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# The charts need only plotly's cartesian build (1.5 MB, against 4.8 MB for the
# full one Dash serves): see src/chatlake/app/plotly_js.py. It is fetched at the
# plotly.js version of the installed plotly package, again when that changes;
# the app serves it only while it matches the checksum written here, last.
$(PLOTLY_CARTESIAN).sha256: $(VENV)/.installed
	@mkdir -p $(@D)
	version=$$($(BIN)/python -c 'import plotly.offline as p; print(p.get_plotlyjs_version())') \
	&& work=$$(mktemp -d) \
	&& npm pack --silent --pack-destination $$work plotly.js-cartesian-dist-min@$$version >/dev/null \
	&& tar -xzf $$work/plotly.js-cartesian-dist-min-$$version.tgz -C $$work \
	&& cp $$work/package/LICENSE $(@D)/plotly-cartesian.LICENSE \
	&& cp $$work/package/plotly-cartesian.min.js $(PLOTLY_CARTESIAN) \
	&& sha256sum $(PLOTLY_CARTESIAN) | cut -d' ' -f1 > $@ \
	&& rm -rf $$work

# Playwright drives Debian's chromium: its own browser download cannot work here.
$(CHROMIUM):
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium

clean:
	rm -rf $(VENV) .chatlake
