# Hindsight — the index of what can be done. `make help` lists it.
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.deps-stamp
PROTOS  := $(shell find protos -name '*.proto')
GEN     := libs/gen
PYX     := $(wildcard services/engine/_core/*.pyx)

.PHONY: help build run test bench up down clean protos engine

help: ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q -r requirements-dev.txt
	$(VPY) -c "import site,os; open(os.path.join(site.getsitepackages()[0],'hindsight-paths.pth'),'w').write('$(CURDIR)\n$(CURDIR)/$(GEN)\n')"
	touch $@

$(GEN)/.stamp: $(PROTOS) $(STAMP)
	rm -rf $(GEN) && mkdir -p $(GEN)
	$(VPY) -m grpc_tools.protoc -Iprotos --python_out=$(GEN) --pyi_out=$(GEN) --grpc_python_out=$(GEN) $(PROTOS)
	touch $@

protos: $(GEN)/.stamp ## generate protobuf/gRPC code into libs/gen

engine: $(STAMP) ## compile the Cython kernels in place
	$(VPY) services/engine/setup.py build_ext --inplace -q

build: $(STAMP) protos engine ## virtualenv, generated protos, Cython engine (idempotent)

run: build ## standalone stack on http://127.0.0.1:8000
	$(VPY) -m services.standalone

test: build ## unit, integration (real Postgres + RabbitMQ) and end-to-end tests
	$(VPY) -m pytest -q

bench: build ## S2 sweep: our engine vs vectorbt vs plain NumPy, one run
	$(VPY) -m pip install -q -r requirements-bench.txt
	$(VPY) -m bench.sweep_s2

up: build ## distributed mode: each service its own process (DATABASE_URL, AMQP_URL)
	$(VPY) -m services.up start

down: ## stop the distributed mode started by `make up`
	$(VPY) -m services.up stop

clean: ## remove generated code and builds (keeps .venv)
	rm -rf $(GEN) build services/engine/_core/*.c services/engine/_core/*.so services/engine/_core/*.html
