# Socle task runner. `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV := uv
export PATH := $(HOME)/.local/bin:$(PATH)

.PHONY: help install up down test lint format test-only fuzz bench-up bench-store helm-lint helm-generate clean login tenants-apply \
	tenants-offboard isolation-report audit-verify

help: ## List every target with what it does
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-17s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: ## Install uv and every Python dependency of the workspace (uv sync, locked)
	@infra/scripts/ensure-uv.sh
	@$(UV) sync --frozen --quiet

up: install ## Run the whole platform locally with a demo EPCI (Ctrl-C or `make down` stops it)
	@infra/scripts/ensure-system-packages.sh up
	@$(UV) run --frozen socle-stack up

down: ## Stop a platform started by `make up`
	@$(UV) run --frozen socle-stack down

# The tools below find the running `make up` stack by themselves (.socle/stack.json, its ports
# and issuer; .socle/secrets.json); settings in the environment take precedence.
login: install ## Log in to the realm of `make up` as a person (device code in the browser) for socle-tenants
	@$(UV) run --frozen socle-login

tenants-apply: install ## Apply a tenant declaration to the running `make up` stack as the person of `make login` (FILE=..., ARGS=--dry-run)
	@test -n "$(FILE)" || { echo "usage: make tenants-apply FILE=tenants/demo/cc-pays-de-sommieres.json [ARGS=--dry-run]" >&2; exit 2; }
	@$(UV) run --frozen socle-tenants apply "$(FILE)" $(ARGS)

tenants-offboard: install ## Offboard a tenant of the `make up` stack: export bundle, then with CONFIRM=1 delete (TENANT=..., EXPORT_DIR=...)
	@test -n "$(TENANT)" -a -n "$(EXPORT_DIR)" || { echo "usage: make tenants-offboard TENANT=commune-30352 EXPORT_DIR=exports/ [CONFIRM=1]" >&2; exit 2; }
	@$(UV) run --frozen socle-tenants offboard "$(TENANT)" --export-dir "$(EXPORT_DIR)" $(if $(CONFIRM),--confirm) $(ARGS)

isolation-report: install ## Run the isolation evidence report on the `make up` stack (JSON=report.json HTML=report.html)
	@$(UV) run --frozen socle-isolation-report run $(if $(JSON),--json "$(JSON)") $(if $(HTML),--html "$(HTML)") $(ARGS)

audit-verify: install ## Verify the hash chains of the `make up` stack's audit log
	@$(UV) run --frozen python -m socle_tenancy.audit verify $(ARGS)

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

bench-store: install ## Benchmark: store_readings under forced RLS against raw COPY without RLS, same run
	@$(UV) run --frozen python tests/bench/bench_store.py

helm-lint: ## Lint the Helm chart with every ci/*-values.yaml (installs the pinned Helm)
	@helm="$$(infra/scripts/install-helm.sh | tail -n 1)" && for f in helm/socle/ci/*-values.yaml; do "$$helm" lint --strict helm/socle --values "$$f" || exit 1; done
	@$(UV) run --frozen python helm/tools/generate.py --check

helm-generate: ## Regenerate the service charts and values schemas from helm/tools
	@$(UV) run --frozen python helm/tools/generate.py

clean: install ## Remove the stopped local platform's state (.socle/: database, Keycloak instance, logs, mail)
	@$(UV) run --frozen socle-stack clean
