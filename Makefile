# Herald: every command a developer or CI needs. `make run` and `make test` work on a fresh clone.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: help install kafka-fetch kafka-up kafka-down cluster-up cluster-down prometheus topics migrate run test test-unit \
        test-integration test-e2e test-faults test-browser browser bench bench-console bench-quick bench-profile lint settings clean

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s "$$(printf '\t')"

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) kafka-fetch ## Python venv with pinned packages, and the broker jars

kafka-fetch: ## Resolve the Apache Kafka broker jars from Maven Central (cached)
	deploy/kafka/kafka.sh fetch

kafka-up: kafka-fetch ## Start the local Kafka broker (KRaft) on 127.0.0.1:9092
	deploy/kafka/kafka.sh start

kafka-down: ## Stop the local Kafka broker
	deploy/kafka/kafka.sh stop

cluster-up: kafka-fetch ## Start the three-node KRaft cluster on 127.0.0.1:19301-19303 (see docs/deploy.md)
	deploy/kafka/cluster.sh start

cluster-down: ## Stop the three-node cluster
	deploy/kafka/cluster.sh stop

topics: $(STAMP) ## Create the topic catalogue (idempotent), name drift and set configs back
	$(BIN)/python -m services.core.topics

migrate: $(STAMP) ## Migrate the database to head
	$(BIN)/python -m services.core.db.migrate up

run: install ## Broker, topics, database and every processor; Ctrl-C stops them all
	$(BIN)/python deploy/devstack.py

browser: ## Debian's Chromium and a CJK font for the browser tests
	deploy/browser/chromium.sh ensure

prometheus: ## Debian's prometheus (the operators' test scrapes the platform with deploy/prometheus/)
	deploy/prometheus/prometheus.sh ensure

test: install browser prometheus ## All tests: unit, integration (real broker + databases), end to end, faults, browser
	$(BIN)/python -m pytest tests -q

test-unit: $(STAMP) ## Fast tests, no broker
	$(BIN)/python -m pytest tests/unit -q

test-integration: install ## Tests against the real broker and databases
	$(BIN)/python -m pytest tests/integration -q

test-e2e: install ## The platform as processes, driven from outside
	$(BIN)/python -m pytest tests/e2e -q

test-faults: install ## The fault suite: one fault at a time under load; writes docs/reliability.md's table
	$(BIN)/python -m pytest tests/faults -q

test-browser: install browser ## The console driven in headless Chromium against the running stack
	$(BIN)/python -m pytest tests/browser -q

bench: install ## Full benchmark suite; writes bench/results/
	$(BIN)/python -m bench.run --mode full
	$(BIN)/python -m bench.bench_codec
	$(BIN)/python -m bench.bench_carrier_http
	$(BIN)/python -m bench.bench_egress_db
	$(BIN)/python -m bench.bench_ingress
	$(BIN)/python -m bench.bench_console
	$(BIN)/python -m bench.bench_smpp
	$(BIN)/python -m bench.bench_scaling

bench-console: install ## Console list pages over 100,000 contacts and 1,000,000 messages
	$(BIN)/python -m bench.bench_console

bench-quick: install ## Benchmarks in under two minutes
	$(BIN)/python -m bench.run --mode quick
	$(BIN)/python -m bench.bench_codec --calls 2000 --rounds 3

bench-profile: install ## py-spy over ingress, router and egress on the inbound path
	$(BIN)/python -m bench.profile

lint: $(STAMP) ## ruff
	$(BIN)/ruff check services tests deploy

settings: $(STAMP) ## Print the settings table
	$(BIN)/python -m services.core.settings

clean: ## Stop the broker and remove local state (.run/)
	-deploy/kafka/kafka.sh stop
	rm -rf .run
