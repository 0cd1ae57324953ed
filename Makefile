# The two commands of the quick start:
#   make run   installs what Speicher needs and starts it in the foreground (as root)
#   make test  installs what the tests need and runs every gate: ruff, mypy, pytest
SHELL := /bin/bash
PYTHON ?= /usr/bin/python3
VENV := .venv
BIN := $(VENV)/bin

# Debian packages the daemon runs
APT_RUN := btrfs-progs mdadm acl util-linux passwd python3-venv samba samba-vfs-modules smartmontools jq restic openssh-client
# ...and what the tests need on top
APT_TEST := $(APT_RUN) procps smbclient samba-testsuite e2fsprogs litmus davfs2 rclone cadaver curl sshpass sshfs awscli \
	chromium fonts-dejavu-core

PYTEST_WORKERS ?= 2

.PHONY: run test deps-run deps-test lint typecheck unit clean

# A first start that fails removes what it made (the daemon its state directory, mount root and
# group; this target the `speicher` link it made), so the next try starts clean.
run: deps-run
	@linked=""; \
	if [ "$$(id -u)" -eq 0 ] && [ "$$(readlink /usr/local/bin/speicher)" != "$(CURDIR)/$(BIN)/speicher" ]; then \
		ln -sfn "$(CURDIR)/$(BIN)/speicher" /usr/local/bin/speicher; linked=1; fi; \
	$(BIN)/speicher serve; code=$$?; \
	if [ $$code -ne 0 ] && [ -n "$$linked" ] && [ ! -e "$${SPEICHER_STATE_DIR:-/var/lib/speicher}/speicher.db" ]; then \
		rm -f /usr/local/bin/speicher; echo "make run: the first start failed; removed the speicher link" >&2; fi; \
	exit $$code

test: deps-test lint typecheck
	@# one test module per worker: the steps of a scenario module share one daemon, in order
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile -W error

lint:
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts

typecheck:
	$(BIN)/mypy

unit: deps-test
	$(BIN)/python -m pytest -m "not system" -W error

deps-run: $(VENV)/.run-installed
	@scripts/apt-install $(APT_RUN)
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
