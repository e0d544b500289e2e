# entraid.dirsync: everything a fresh Debian machine needs, from two commands: `make demo`, `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
COLLECTIONS := $(CURDIR)/$(VENV)/collections
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export PYTHONPATH := $(CURDIR)/lab
# Debian's Samba for the lab's domain controller; shellcheck for the shell scripts' sanity test; the Kerberos headers
# that gssapi (requirements-lab.txt) builds against, and kinit for the Kerberos test.
SYSTEM_PACKAGES := samba samba-ad-dc ldb-tools shellcheck libkrb5-dev krb5-user
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help setup system-packages venv demo test unit units sanity lint package lab-up lab-down lab-status clean bench bench-memory bench-incremental

help:
	@echo "make demo      set up everything, start the lab, run the drift report against it"
	@echo "make test      set up everything and run the whole suite (see CONTRIBUTING.md for its stages)"
	@echo "make lab-up    start the lab (Samba AD DCs + Entra ID/Graph emulator)  LAB_COUNT=300 LAB_SEED=42 LAB_FORESTS=2"
	@echo "make lab-down  stop the lab"

setup: system-packages venv

# System packages, installed only when missing.
system-packages:
	@dpkg -s $(SYSTEM_PACKAGES) >/dev/null 2>&1 || { \
	  echo "Installing $(SYSTEM_PACKAGES)..."; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; }
	@# Debian enables the distribution's own samba services on install; the lab runs its own.
	@-$(SUDO) systemctl disable --now samba-ad-dc smbd nmbd winbind >/dev/null 2>&1 || true

venv: $(VENV)/.ready

$(VENV)/.ready: requirements.txt requirements-lab.txt requirements-dev.txt
	@command -v krb5-config >/dev/null || { echo "gssapi (requirements-lab.txt) is built against the Kerberos headers: run 'make system-packages' (or apt-get install libkrb5-dev) first."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@# requirements-dev.txt includes requirements-lab.txt, which includes requirements.txt.
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@# The collection, where Ansible finds it: a link, so edits take effect at once.
	mkdir -p $(COLLECTIONS)/ansible_collections/entraid
	ln -sfn $(CURDIR) $(COLLECTIONS)/ansible_collections/entraid/dirsync
	touch $@

lab-up: setup
	$(PY) -m dirsync_lab up

lab-down: venv
	$(PY) -m dirsync_lab down

lab-status: venv
	$(PY) -m dirsync_lab status

demo: lab-up
	@bash scripts/demo.sh

# The whole suite. The lab is started for it and always stopped afterwards.
test: setup
	@bash scripts/test.sh

unit: venv
	$(PY) -m pytest tests/unit -q

# The same unit tests, the way ansible-test runs them (from a copy under .build/ansible_collections/).
units: venv
	@bash scripts/ansible-test.sh units

sanity: venv
	@bash scripts/sanity.sh

lint: venv
	$(VENV)/bin/ansible-lint

# Build the tarball, check what it holds, install it into an empty path and run it (drift_report needs the lab).
package: venv
	@bash scripts/package-test.sh

clean: lab-down
	rm -rf .lab .build .ansible tests/output

# The drift read against its floor (not part of make test): BENCH_COUNTS="10000 100000" BENCH_ROUNDS=5.
BENCH_COUNTS ?= 10000 100000
BENCH_ROUNDS ?= 5
bench: setup
	$(PY) benchmarks/bench_drift.py --counts $(BENCH_COUNTS) --rounds $(BENCH_ROUNDS)

# Peak memory of phone_compare, phone_backup, phone_reconcile and phone_restore at those sizes (not part of make test).
MEMORY_ROUNDS ?= 3
bench-memory: setup
	$(PY) benchmarks/bench_memory.py --counts $(BENCH_COUNTS) --rounds $(MEMORY_ROUNDS)

# phone_compare with state_file after 1% of the users changed, against a full run, at those sizes (not part of make test).
bench-incremental: setup
	$(PY) benchmarks/bench_incremental.py --counts $(BENCH_COUNTS) --rounds $(BENCH_ROUNDS)
