# gpufleet — everyday commands. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := .stamps
export GPUFLEET_CACHE ?= $(HOME)/.cache/gpufleet
export PATH := $(CURDIR)/$(BIN):$(PATH)

PYTEST_ARGS ?=

.PHONY: help venv compile pure tools crds crds-check lint test test-unit test-cluster test-core test-core-interpreted test-core-thorough test-kills demo \
        cluster-up cluster-down bandit bench bench-core bench-core-reference bench-fleet bench-sim chart-sync clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-22s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP)/venv: pyproject.toml
	@mkdir -p $(STAMP)
	@echo "==> creating the virtual environment in $(VENV) (Python >= 3.11)"
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed; set PYTHON=/path/to/python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip 'setuptools>=77'
	@GPUFLEET_PURE_PYTHON=1 $(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

# The scheduling core compiled in place with mypyc (setup.py says which modules); rebuilt
# when any core source changes.
$(STAMP)/compiled: $(STAMP)/venv setup.py $(wildcard operator/gpufleet/core/*.py)
	@echo "==> compiling gpufleet.core with mypyc (about 20 s; log in $(STAMP)/compile.log)"
	@$(BIN)/python setup.py build_ext --inplace --parallel 2 >$(STAMP)/compile.log 2>&1 \
	  || { tail -30 $(STAMP)/compile.log; echo "mypyc failed (log above, all of it in $(STAMP)/compile.log): a type error in the core, or no C compiler; 'make pure' runs the core interpreted"; exit 1; }
	@# An unchanged source gives the same C: setuptools then copies the old extension with its old time.
	@touch operator/gpufleet/core/*.so $@

venv: $(STAMP)/venv $(STAMP)/compiled ## Create .venv with gpufleet (core compiled) and its dev tools

compile: $(STAMP)/compiled ## Compile the scheduling core with mypyc (done by every target that needs the venv)

pure: ## Remove the compiled core: gpufleet.core then runs as plain Python (until the next make target)
	@rm -f $(STAMP)/compiled operator/gpufleet/core/*.so operator/gpufleet_core__mypyc*.so
	@echo "gpufleet.core now runs interpreted; any make target that needs the venv compiles it again"

tools: ## Build and cache kube-apiserver, controller-manager, scheduler, kubemark, etcd, kwok, helm, promtool, prometheus (outside the tree)
	@bash hack/build-tools.sh

crds: venv ## Regenerate crds/ from the pydantic models, and the chart's copy
	@$(BIN)/python -m gpufleet.api.crdgen
	@$(MAKE) --no-print-directory chart-sync

chart-sync: venv ## Copy crds/ into the chart's CRD templates
	@$(BIN)/python hack/sync-chart-crds.py

crds-check: venv ## Fail when crds/ or the chart's copy drifted from the models
	@$(BIN)/python -m gpufleet.api.crdgen --check
	@$(BIN)/python hack/sync-chart-crds.py --check

lint: venv ## ruff, mypy --strict, import contracts, hadolint
	@echo "==> ruff"; $(BIN)/ruff check operator tests hack setup.py
	@$(BIN)/ruff format --check operator tests hack setup.py
	@echo "==> mypy (strict)"; $(BIN)/mypy
	@echo "==> import contracts"; $(BIN)/lint-imports
	@echo "==> hadolint"; $(BIN)/hadolint Dockerfile
	@$(MAKE) --no-print-directory bandit

# The operator's and the agent's packages with every bandit test; the pure core and the tooling
# with the findings docs/security.md justifies skipped: B101 (asserts state invariants of code
# that takes no outside input), B404/B603 (the dev tools run fixed argument lists, no shell).
OPERATOR_PKGS := $(addprefix operator/gpufleet/,api observed sites control handlers cli metrics.py fleetfile.py corebuild.py __init__.py)
TOOLING_PKGS := $(addprefix operator/gpufleet/,core dev sim bench)
bandit: venv ## bandit (security lint) over the package; findings and skips in docs/security.md
	@echo "==> bandit"
	@$(BIN)/bandit -q -r $(OPERATOR_PKGS)
	@$(BIN)/bandit -q -r -s B101,B404,B603 $(TOOLING_PKGS)

test-unit: venv ## Pure tests only (no clusters), seconds
	@$(BIN)/pytest -m "not cluster" $(PYTEST_ARGS)

test-cluster: venv tools ## Only the tests that need the local clusters
	@GPUFLEET_REQUIRE_CLUSTER=1 $(BIN)/pytest -m cluster $(PYTEST_ARGS)

test: venv tools lint test-core-interpreted ## Everything: lint, pure tests, cluster tests against real control planes
	@GPUFLEET_EXPECT_CORE=compiled GPUFLEET_REQUIRE_CLUSTER=1 HYPOTHESIS_PROFILE=ci $(BIN)/pytest $(PYTEST_ARGS)

cluster-up: venv tools ## Bring up the three-site dev fleet
	@$(BIN)/gpufleet dev up --reuse

cluster-down: venv ## Stop the dev fleet, its Prometheus and the demo operator (no process left behind)
	@if [ -f $(GPUFLEET_CACHE)/demo/operator.pid ]; then kill $$(cat $(GPUFLEET_CACHE)/demo/operator.pid) 2>/dev/null || true; rm -f $(GPUFLEET_CACHE)/demo/operator.pid; fi
	@$(BIN)/gpufleet dev down

demo: venv tools ## Dev fleet + operator + examples; shows where each workload runs and why
	@bash hack/demo.sh

bench: bench-core bench-fleet bench-sim ## All benchmarks (core curve, fleet bring-up, simulator)

bench-core: venv ## Scheduling cycle at 10k, 100k and 1M GPUs (1,000 queues, 100,000 pending)
	@for g in 10000 100000 1000000; do $(BIN)/gpufleet bench core --gpus $$g --queues 1000 --pending 100000 --no-reference --json; done

bench-core-reference: venv ## The fast cycle against the plain-Python reference at 100k GPUs (~5 min)
	@$(BIN)/gpufleet bench core --gpus 100000 --queues 1000 --pending 100000 --reference --json

bench-fleet: venv tools ## A control plane with 1,000 fake GPU nodes; operator throughput vs API server ceiling
	@$(BIN)/gpufleet dev bench --nodes 1000 --json
	@$(BIN)/gpufleet dev throughput --nodes 1000 --workloads 2000 --json

test-core: venv ## Core and scenario tests (hypothesis default profile)
	@$(BIN)/pytest -q tests/core tests/scenarios

# The same source interpreted (installs without a C compiler run it): a copy of the tree without
# the compiled modules comes first on the path.
test-core-interpreted: venv ## Core and scenario tests against the interpreted core
	@rm -rf $(STAMP)/interpreted && mkdir -p $(STAMP)/interpreted
	@cp -r operator/gpufleet $(STAMP)/interpreted/ && find $(STAMP)/interpreted -name '*.so' -delete
	@echo "==> core and scenario tests, interpreted core"
	@PYTHONPATH=$(STAMP)/interpreted GPUFLEET_EXPECT_CORE=interpreted $(BIN)/pytest -q -p no:cacheprovider tests/core tests/scenarios

test-kills: venv tools ## The full kill storm: 100 kill -9s of either replica during 2,000 workloads (long)
	@GPUFLEET_REQUIRE_CLUSTER=1 GPUFLEET_TEST_KILLS=100 GPUFLEET_TEST_KILL_WORKLOADS=2000 $(BIN)/pytest -s -p no:cacheprovider tests/e2e/test_many_kills.py

test-core-thorough: venv ## Core property tests with 5,000 examples each (~7 min)
	@HYPOTHESIS_PROFILE=thorough $(BIN)/pytest -q tests/core

bench-sim: venv ## Replay the openb trace under four policies; writes docs/sim/
	@$(BIN)/python -m gpufleet.sim.bench

clean: ## Remove the virtual environment and caches in the tree (not the tool cache)
	rm -rf $(VENV) $(STAMP) build operator/gpufleet/core/*.so operator/gpufleet_core__mypyc*.so .mypy_cache .ruff_cache .pytest_cache .hypothesis
