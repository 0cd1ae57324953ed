# The two commands of the quick start:
#   make run   installs what Speicher needs and starts it in the foreground (as root)
#   make test  installs what the tests need and runs every gate: ruff, mypy, pytest
SHELL := /bin/bash
PYTHON ?= /usr/bin/python3
VENV := .venv
BIN := $(VENV)/bin

# Debian packages the daemon runs
APT_RUN := btrfs-progs mdadm acl util-linux passwd python3-venv samba samba-vfs-modules smartmontools jq
# ...and what the tests need on top
APT_TEST := $(APT_RUN) procps smbclient samba-testsuite e2fsprogs

PYTEST_WORKERS ?= 2

.PHONY: run test deps-run deps-test lint typecheck unit clean

run: deps-run
	$(BIN)/speicher serve

test: deps-test lint typecheck
	@# one test module per worker: the steps of a scenario module share one daemon, in order
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile -W error

lint:
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck:
	$(BIN)/mypy

unit: deps-test
	$(BIN)/python -m pytest -m "not system" -W error

deps-run: $(VENV)/.run-installed
	@scripts/apt-install $(APT_RUN)
	@# the 'speicher' command for root's shell, pointing into this checkout's venv
	@if [ "$$(id -u)" -eq 0 ]; then ln -sfn "$(CURDIR)/$(BIN)/speicher" /usr/local/bin/speicher; fi
	@# Speicher runs its own smbd: the distribution's Samba services must not hold port 445
	@if [ -d /run/systemd/system ]; then \
		systemctl disable --now smbd nmbd samba-ad-dc >/dev/null 2>&1 || true; fi

deps-test: $(VENV)/.test-installed
	@scripts/apt-install $(APT_TEST)

$(VENV)/bin/pip:
	@scripts/apt-install python3-venv
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade "pip==25.3"

$(VENV)/.run-installed: $(VENV)/bin/pip pyproject.toml constraints.txt
	$(BIN)/pip install -q -c constraints.txt -e .
	@touch $@

$(VENV)/.test-installed: $(VENV)/.run-installed
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	@touch $@

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
