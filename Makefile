# Everything a fresh machine needs is installed by these targets; nothing is assumed by hand.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: dev test lint bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

dev: $(STAMP)

# The VS Code extension's dependencies (for its compile/package/protocol test).
editors/vscode/node_modules/.installed: editors/vscode/package-lock.json
	cd editors/vscode && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The Firebase Auth emulator and the gRPC Firestore emulator for the cloud tests (offline-capable).
tests/unit/cloud/.emulators/node_modules/.installed: tests/unit/cloud/.emulators/package-lock.json
	cd tests/unit/cloud/.emulators && npm ci --no-audit --no-fund --loglevel=error
	touch $@

test: $(STAMP) editors/vscode/node_modules/.installed tests/unit/cloud/.emulators/node_modules/.installed
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(VENV)/bin/ruff check leo_lsp tests
	$(VENV)/bin/ruff format --check leo_lsp tests
	$(VENV)/bin/mypy leo_lsp

bench: $(STAMP)
	for b in tests/bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) editors/vscode/node_modules editors/vscode/out
