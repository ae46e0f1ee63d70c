# The two commands: `make run` (the app on embedded defaults) and `make test` (lint + the whole suite);
# `make dev` is `make run` with Django's auto-reloading development server instead of granian.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
ADDR   ?= 127.0.0.1:8000

.PHONY: run dev test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.run-deps: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev-deps: requirements-dev.txt requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.run-deps

# The demo serves its own pictures on loopback, so it allows fetching from its own address (never in production).
run: $(VENV)/.run-deps
	$(BIN)/python manage.py migrate --noinput
	SPOTCHECK_FETCH_ALLOW=$(ADDR) SPOTCHECK_DEMO_BASE_URL=http://$(ADDR) $(BIN)/python manage.py demo_seed
	SPOTCHECK_FETCH_ALLOW=$(ADDR) SPOTCHECK_DEMO_BASE_URL=http://$(ADDR) $(BIN)/python manage.py serve $(ADDR)

dev: $(VENV)/.run-deps
	$(BIN)/python manage.py migrate --noinput
	SPOTCHECK_FETCH_ALLOW=$(ADDR) SPOTCHECK_DEMO_BASE_URL=http://$(ADDR) $(BIN)/python manage.py demo_seed
	SPOTCHECK_FETCH_ALLOW=$(ADDR) SPOTCHECK_DEMO_BASE_URL=http://$(ADDR) $(BIN)/python manage.py serve --dev $(ADDR)

lint: $(VENV)/.dev-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py makemigrations --check --dry-run

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.dev-deps
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf var .pytest_cache .ruff_cache
