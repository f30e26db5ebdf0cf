# Two commands: `make demo` (install + run the whole stack) and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

# A Python 3.12+ interpreter: PATH first, then pyenv's versions.
PYTHON ?= $(shell for p in python3.12 python3.13 python3; do \
	  command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(not (3,12) <= sys.version_info[:2] < (3,14))' 2>/dev/null && { command -v $$p; exit 0; }; \
	done; \
	root=$$(pyenv root 2>/dev/null || echo $$HOME/.pyenv); \
	for p in $$(ls -d $$root/versions/3.12* 2>/dev/null | sort -rV) $$(ls -d $$root/versions/3.13* 2>/dev/null | sort -rV); do \
	  [ -x $$p/bin/python ] && $$p/bin/python -c 'import sys; sys.exit(not (3,12) <= sys.version_info[:2] < (3,14))' 2>/dev/null && { echo $$p/bin/python; exit 0; }; \
	done)

.PHONY: demo test install install-test chromium lint clean

$(VENV)/.created:
	@if [ -z "$(PYTHON)" ]; then \
	  echo "error: kodosumi-timer needs Python 3.12 or 3.13; none found on PATH or in pyenv." >&2; \
	  echo "       install one (e.g. 'pyenv install 3.12') or run: make PYTHON=/path/to/python3.12 ..." >&2; \
	  exit 1; fi
	@echo "== creating $(VENV) with $(PYTHON) ($$($(PYTHON) --version))"
	@$(PYTHON) -m venv $(VENV)
	@$(PIP) install -q --upgrade pip > $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	@touch $@

$(VENV)/.installed: $(VENV)/.created pyproject.toml
	@echo "== installing kodosumi-timer (this pulls kodosumi and Ray; a few minutes the first time)"
	@$(PIP) install -q -e . >> $(VENV)/install.log 2>&1 || { tail -40 $(VENV)/install.log; exit 1; }
	@$(PY) -c "import kodosumi_timer, kodosumi" || { echo "install failed, see $(VENV)/install.log" >&2; exit 1; }
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	@echo "== installing test extras"
	@$(PIP) install -q -e '.[test,bench]' >> $(VENV)/install.log 2>&1 || { tail -40 $(VENV)/install.log; exit 1; }
	@$(PY) -c "import pytest, playwright, hypothesis" || { echo "install failed, see $(VENV)/install.log" >&2; exit 1; }
	@touch $@

install: $(VENV)/.installed

chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  echo "== installing Chromium from Debian's packages"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	fi
	@/usr/bin/chromium --version 2>/dev/null

demo: $(VENV)/.installed
	@$(VENV)/bin/koco-timer demo

test: $(VENV)/.installed-test chromium
	@echo "== lint"
	@$(VENV)/bin/ruff check kodosumi_timer tests bench
	@# the whole package; strict on the pure core (pyproject.toml), incremental: seconds
	@$(VENV)/bin/mypy kodosumi_timer
	@echo "== tests"
	@# NODE_LOSS=1 adds the slow node-loss tests (a two-node Ray cluster; minutes)
	@$(if $(NODE_LOSS),KODO_TIMER_NODE_LOSS=1 )$(VENV)/bin/pytest -q -ra $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
