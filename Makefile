# The concierge's commands. `make run` and `make test` do all the set-up on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      := .venv
BIN       := $(VENV)/bin
PY        := $(BIN)/python
STAMP     := $(VENV)/.installed
MODEL_STAMP := models/.trained

# Embedded defaults for local runs (override in the environment or .env; see .env.example).
# Development unless told otherwise: `make run` tolerates the embedded defaults (bot/preflight.py
# refuses them when CONCIERGE_ENV is production or unset).
export CONCIERGE_ENV ?= development
export RASA_AUTH_TOKEN ?= dev-only-token
export SLA_POLICY_FILE ?= data/sla_policy.yml
# Every WeCom call goes to the local sandbox (bot/sandbox), which `make run` starts; its dev
# secrets (bot/wecom/dev_defaults.py) are used only while this points at this machine.
export WECOM_API_BASE ?= http://127.0.0.1:8800
# The sandbox delivers WeCom's callbacks to the intake server (bot/wecom/intake_server.py), which
# answers them from its own process and tells Rasa; Rasa's own /webhooks/wecom routes work too.
export SANDBOX_CONNECTOR_URL ?= http://127.0.0.1:5006
# The staff console (bot/console) signs in through the sandbox's WeCom login page.
export WECOM_OAUTH_BASE ?= http://127.0.0.1:8800
# Preference tags mirrored to the sandbox's demo corp tag library.
export WECOM_CORP_TAGS_FILE ?= data/wecom_corp_tags.yml
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# Rasa's telemetry would try the network; this machine has none.
export RASA_TELEMETRY_ENABLED := false
export TF_CPP_MIN_LOG_LEVEL := 3

# Rasa reads training data only from these folders (data/ also holds the knowledge base, demo
# data and catalogues, which are not training data).
RASA_DATA := data/nlu data/rules data/stories

# What the model is trained from: any change here retrains, nothing else does.
TRAIN_INPUTS := config.yml domain.yml $(shell find data/nlu data/rules data/stories data/jieba -type f 2>/dev/null) \
                bot/nlu/normalizer.py

.PHONY: help install run run-prod train test lint shell eval bench bench-wecom bench-bookings bench-scale migrate demo clean

help:
	@echo "make run    - set up if needed, then start Rasa, actions, the WeCom sandbox and the worker"
	@echo "make test   - make lint, then the whole test suite (unit, integration on PostgreSQL/Redis, Rasa data and stories)"
	@echo "make lint   - ruff (lint and format check), import contracts, mypy"
	@echo "make train  - train the model if data/, config.yml or domain.yml changed"
	@echo "make shell  - chat with the bot in the terminal (Rasa shell; needs the action server: make run)"
	@echo "make eval   - NLU figures on both held-out sets (simplified and traditional)"
	@echo "make bench  - benchmarks (not tests)"
	@echo "make bench-wecom - WeCom connector: callback times, replays, Rasa killed mid-load"
	@echo "make bench-bookings - booking import of 100,000 rows on SQLite and PostgreSQL"
	@echo "make bench-scale - 1 and 2 replicas of each process (PostgreSQL/Redis/RabbitMQ), then the fault table"

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@PYTHON=$$(scripts/find-python310.sh) || exit 1; \
	  if [ ! -x $(PY) ]; then echo "Creating $(VENV) with $$PYTHON"; "$$PYTHON" -m venv $(VENV); fi
	$(PY) -m pip install --quiet --upgrade "pip<24.1"
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

migrate: install
	@mkdir -p var
	$(BIN)/concierge db upgrade

demo: migrate
	$(BIN)/concierge demo load

$(MODEL_STAMP): $(STAMP) $(TRAIN_INPUTS)
	@mkdir -p models
	@# A training with an empty Rasa cache is a full one: its time is kept for `make bench`.
	@started=$$(date +%s.%N); cold=$$(test -n "$$(ls -A $${RASA_CACHE_DIRECTORY:-.rasa/cache} 2>/dev/null)" && echo no || echo yes); \
	  echo "$(BIN)/rasa train --data $(RASA_DATA) --fixed-model-name concierge --out models"; \
	  $(BIN)/rasa train --data $(RASA_DATA) --fixed-model-name concierge --out models && \
	  $(PY) -m bench.train record-ours --started "$$started" --cold "$$cold"
	@touch $(MODEL_STAMP)

train: $(MODEL_STAMP)

run: demo train
	@scripts/banner.sh
	$(BIN)/honcho start -f Procfile

# The production process set (docs/DEPLOY.md): .env must hold a complete production configuration
# (it overrides this Makefile's development defaults); preflight names every problem otherwise.
# REPLICAS=N: N Rasa, action and intake servers on the shared PostgreSQL, Redis and RabbitMQ,
# one worker and one event consumer (bot/ops/replicas.py writes var/Procfile.production-N).
REPLICAS ?= 1
run-prod: install
	@set -a; if [ -f .env ]; then . ./.env; fi; set +a; export CONCIERGE_ENV=production; \
	  $(BIN)/concierge preflight && $(BIN)/concierge db upgrade && \
	  mkdir -p var && $(PY) -m bot.ops.replicas $(REPLICAS) > var/Procfile.production-$(REPLICAS) && \
	  exec $(BIN)/honcho start -d . -f var/Procfile.production-$(REPLICAS)

shell: train
	$(BIN)/rasa shell -m models/concierge.tar.gz --endpoints endpoints.yml

# Every Python file is formatted by ruff (pyproject.toml's [tool.ruff]); `ruff format .` fixes it.
RUFF_FORMAT_PATHS := .
MYPY_PATHS := bot/core bot/paging/ports.py bot/wecom

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check $(RUFF_FORMAT_PATHS)
	PYTHONPATH=$(CURDIR) $(BIN)/lint-imports
	$(BIN)/mypy $(MYPY_PATHS)

test: lint train
	$(BIN)/rasa data validate --data $(RASA_DATA) --fail-on-warnings
	$(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS)

eval: train
	$(PY) -m bot.nlu.evaluate $(EVAL_ARGS)

bench: train
	$(PY) -m bench $(BENCH_ARGS)

bench-wecom: train
	$(PY) -m bench.wecom_reliability $(BENCH_ARGS)

# The production set with 1 and 2 replicas of each process on PostgreSQL/Redis/RabbitMQ, then the
# fault table (bench/scale.py). It restarts the machine's Redis and RabbitMQ: under the CPU lock.
bench-scale: train
	flock /tmp/concierge-cpu.lock $(PY) -m bench.scale $(BENCH_ARGS)

bench-bookings: $(STAMP)
	$(PY) -m bench.bookings_import $(BENCH_ARGS)
# Segment count and campaign render for 100,000 guests (bench/marketing.py), e.g.
# BENCH_ARGS="--guests 10000" or --database-url an empty PostgreSQL database.
bench-marketing: $(STAMP)
	$(PY) -m bench.marketing $(BENCH_ARGS)

clean:
	rm -rf models .rasa results

# SLA figures per class and advisor (bot/paging/report.py), e.g. SLA_REPORT_ARGS="--since 7d --json".
.PHONY: sla-report
sla-report: migrate
	$(BIN)/concierge sla-report $(SLA_REPORT_ARGS)
