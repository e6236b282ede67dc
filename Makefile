# adsite: the two commands are `make run` and `make test`.
#
#   make run          venv, install, migrate, demo data, first models; then serve on 127.0.0.1:$(PORT).
#                     With DATABASE_URL and REDIS_URL set it serves in services mode: granian x WEB_CONCURRENCY,
#                     Celery worker and beat under supervisord, each restarted alone (ADSITE_ROLES picks them).
#   make test         install and run the test suite (service-backed tests skip without the services).
#   make test-services  the service-backed suite against PostgreSQL and Redis on 127.0.0.1, and the API
#                     contract checks (schemathesis over every operation, a client generated from the schema).
#   make test-contract  the API contract checks alone (about two minutes).
#   make test-faults  the fault battery (tests/faults): its own Redis, PostgreSQL and site, broken while
#                     traffic flows, then counted; never touches the machine's services (about 10 min).
#   make test-scaleout  the scale-out suite (tests/scaleout, marker scaleout): a Redis Cluster of its own
#                     (scripts/redis_cluster.sh) on spare ports, the Redis-facing suite against it and the
#                     rehearsed topology; skips with the reason where redis-server is missing.
#   make bench        the benchmarks; figures go to docs/benchmarks.md.
#
# TORCH_SPEC picks the PyTorch build: the CPU wheel by default; on a GPU host, e.g.
#   make run TORCH_SPEC="torch==2.13.0" PIP_TORCH_ARGS="--index-url <your CUDA wheel index>"

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PIP_TORCH_ARGS ?=
PORT ?= 8000
WEB_CONCURRENCY ?= 2
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
SERVICES_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
SERVICES_REDIS_URL ?= redis://127.0.0.1:6379/15

export PORT WEB_CONCURRENCY

# The site's DEBUG is off by default; the demo (make run, make dev and their setup) runs in DEBUG.
run dev setup: export DJANGO_DEBUG ?= 1

.PHONY: install setup run dev test test-services test-contract test-faults test-scaleout bench bench-gpu lint clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check "$(TORCH_SPEC)" $(PIP_TORCH_ARGS)
	$(PIP) install -q --disable-pip-version-check -e ".[test]"
	touch $@

install: $(VENV)/.installed

setup: install
	$(PY) manage.py migrate --noinput -v 0
	$(PY) manage.py collectstatic --noinput -v 0
	$(PY) manage.py bootstrap_demo

run: setup
	scripts/serve.sh

dev: setup
	$(PY) manage.py runserver 127.0.0.1:$(PORT)

test: install
	$(PY) -m pytest -q -m "not contract and not scaleout"

test-contract: install
	$(PY) -m pytest -q -m contract

test-services: install
	DATABASE_URL=$(SERVICES_DATABASE_URL) REDIS_URL=$(SERVICES_REDIS_URL) ADSITE_REQUIRE_SERVICES=1 \
		$(PY) -m pytest -q -m "requires_redis or requires_postgres or services or browser or contract"

test-faults: install
	ADSITE_FAULTS=1 $(PY) -m pytest -q -m faults tests/faults --timeout 600

test-scaleout: install
	$(PY) -m pytest -q -m scaleout tests/scaleout --timeout 600

bench: install
	$(PY) -m benchmarks.run

bench-gpu: install
	$(PY) -m benchmarks.gpu

lint: install
	$(VENV)/bin/ruff check adsite inference tracking tests benchmarks
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) var
