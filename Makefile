# `make demo` and `make test` each set everything up first on a fresh machine.
# Extra demo options: make demo DEMO_ARGS="--keep-running" (see `lfr demo --help`).
.PHONY: setup demo test check bench
VENV := .venv

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py $(wildcard proto/lfr/v1/*.proto)
	scripts/setup

demo: setup
	$(VENV)/bin/lfr demo $(DEMO_ARGS)

check: setup
	scripts/check

test: setup
	scripts/check
	$(VENV)/bin/pytest

bench: setup
	$(VENV)/bin/python -m bench
