# Socle task runner. `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV := uv
export PATH := $(HOME)/.local/bin:$(PATH)

.PHONY: help install up down test lint format test-only fuzz bench-up helm-lint helm-generate clean tenants-apply

help: ## List every target with what it does
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: ## Install uv and every Python dependency of the workspace (uv sync, locked)
	@infra/scripts/ensure-uv.sh
	@$(UV) sync --frozen --quiet

up: install ## Run the whole platform locally with a demo EPCI (Ctrl-C or `make down` stops it)
	@infra/scripts/ensure-system-packages.sh up
	@$(UV) run --frozen socle-stack up

down: ## Stop a platform started by `make up`
	@$(UV) run --frozen socle-stack down

tenants-apply: install ## Apply a tenant declaration to the platform of `make up` (FILE=..., ARGS=--dry-run)
	@test -n "$(FILE)" || { echo "usage: make tenants-apply FILE=tenants/demo/cc-pays-de-sommieres.json [ARGS=--dry-run]" >&2; exit 2; }
	@SOCLE_TENANTS_CLIENT_SECRET="$${SOCLE_TENANTS_CLIENT_SECRET:-$$(python3 -c 'import json; print(json.load(open(".socle/secrets.json"))["platform_client"])')}" \
	  $(UV) run --frozen socle-tenants apply "$(FILE)" --issuer "$${SOCLE_TENANTS_ISSUER:-http://127.0.0.1:8180/realms/socle}" $(ARGS)

lint: install ## uv.lock up to date, ruff (lint + format check) and mypy (strict for the core)
	@$(UV) lock --check --quiet || { echo "[socle] uv.lock does not match the pyproject files: run uv lock" >&2; exit 1; }
	@$(UV) run --frozen ruff check .
	@$(UV) run --frozen ruff format --check .
	@$(UV) run --frozen mypy

format: install ## Apply ruff's formatting and safe fixes
	@$(UV) run --frozen ruff format .
	@$(UV) run --frozen ruff check --fix .

test: install ## Install what the tests need, then lint and run the whole suite on real servers
	@infra/scripts/ensure-system-packages.sh test
	@$(MAKE) --no-print-directory lint
	@$(UV) run --frozen pytest; status=$$?; if [ $$status -eq 5 ]; then echo "[socle] pytest collected no test: failing" >&2; exit 1; fi; exit $$status

test-only: install ## Run pytest only (pass ARGS="-k ..." to select)
	@$(UV) run --frozen pytest $(ARGS)

fuzz: install ## schemathesis on every service's OpenAPI with every role: no 5xx, nothing undocumented (FUZZ_MAX_EXAMPLES=50)
	@FUZZ_PROFILE=full $(UV) run --frozen pytest tests/fuzz -p no:logging $(ARGS)

bench-up: install ## Benchmark: time for `make up` to reach ready (cold and warm) against the 90 s target
	@$(UV) run --frozen python tests/bench/bench_up.py

helm-lint: ## Lint the Helm chart with every ci/*-values.yaml (installs the pinned Helm)
	@helm="$$(infra/scripts/install-helm.sh | tail -n 1)" && for f in helm/socle/ci/*-values.yaml; do "$$helm" lint --strict helm/socle --values "$$f" || exit 1; done
	@$(UV) run --frozen python helm/tools/generate.py --check

helm-generate: ## Regenerate the service charts and values schemas from helm/tools
	@$(UV) run --frozen python helm/tools/generate.py

clean: ## Remove the local platform's state (.socle/: database, Keycloak instance, logs)
	@rm -rf .socle
