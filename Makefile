# attendance-gateway — the two set-up commands are `make demo` and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test venv system-deps lint typecheck check bench chaos chaos-long security install uninstall test-pi test-systemd unit-check clean deb offline-bundle test-package

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,dev]'
	touch $(STAMP)

venv: $(STAMP)

system-deps:
	@bash scripts/ensure-system-deps.sh

demo: venv system-deps
	$(BIN)/gatewayctl demo

test: venv system-deps
	$(BIN)/python -m pytest -n 2 -q

lint: venv
	$(BIN)/ruff check gateway drivers tests bench
	$(BIN)/ruff format --check gateway drivers

typecheck: venv
	$(BIN)/mypy

check: lint typecheck

bench: venv system-deps
	$(BIN)/python -m bench

# Issue 7: chaos suite with real processes (the CI-sized run is also part of `make test`);
# both print the figures table of docs/reliability.md. chaos-long: CHAOS_ROUNDS=50 by default.
chaos: venv system-deps
	bash scripts/chaos.sh

chaos-long: venv system-deps
	bash scripts/chaos.sh long $(or $(CHAOS_ROUNDS),50)

security: venv system-deps
	$(BIN)/bandit -c pyproject.toml -r gateway drivers -q
	$(BIN)/python -m pytest -n 2 -q tests/security tests/fuzz

unit-check:
	bash scripts/check-unit.sh

install:
	$(SUDO) bash scripts/install.sh

uninstall:
	$(SUDO) bash scripts/uninstall.sh

test-pi:
	$(SUDO) bash scripts/test-pi.sh

# Issue 17: the Debian package (dist/attendance-gateway_<version>_<arch>.deb), the offline
# bundle for sites without internet, and the package's life in a booted bookworm container.
DEB_ARCHES ?= amd64 arm64
deb: venv
	for a in $(DEB_ARCHES); do bash scripts/build-deb.sh --arch $$a || exit 1; done

offline-bundle: venv
	bash scripts/offline-bundle.sh

test-package: venv
	$(SUDO) bash scripts/test-package.sh

# Issue 12: a real systemd (nspawn-booted Debian bookworm) runs the unit as installed.
# Not root: the script re-runs itself with `sudo -n`, or prints SKIP and why.
test-systemd: venv
	bash scripts/test-systemd.sh

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
