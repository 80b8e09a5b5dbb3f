# One place for every command the README and CI use. Each target installs what it needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP_FLAGS := --disable-pip-version-check -q
CHECKOV_VENV := .local/venv-checkov

.PHONY: test check lint types pytest demo dev bench soak sandbox clean deps checkov lock

test: check

check: lint types pytest checkov

deps: $(VENV)/.installed $(VENV)/bin/bcjobs node_modules/.installed

# The lock the deployment's remote build installs (requirements.txt: every package pinned, with hashes), then the
# dev tools' lock, compiled against it: the tests run on exactly what production gets. Two invocations because
# pip's hash-checking mode covers one whole invocation; each lock is complete, so a missing pin fails here.
$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) --require-hashes -r requirements.txt
	$(PY) -m pip install $(PIP_FLAGS) --require-hashes -r requirements-dev.txt
	touch $@

# The app client's own distribution (bcjobs/pyproject.toml), editable, so `.venv/bin/bcjobs` runs this checkout's
# code as the README prints it. Offline and outside the hashed locks: its dependencies are already in them
# (tests/unit/client/test_package.py checks), hence --no-deps; setuptools comes from the dev lock, hence
# --no-build-isolation. PYTHONWARNINGS hides setuptools' generic warning about editable installs.
$(VENV)/bin/bcjobs: $(VENV)/.installed bcjobs/pyproject.toml
	PYTHONWARNINGS=ignore::UserWarning $(PY) -m pip install $(PIP_FLAGS) --no-deps --no-build-isolation --no-index -e ./bcjobs
	touch $@

# Regenerate both locks from requirements.in / requirements-dev.in (after editing a pin there). Pins already in the
# locks are kept unless an .in file needs otherwise (pip-compile's default; LOCK_ARGS=--upgrade takes the newest).
# No pip config and no find-links: the hashes must be those of the public index the remote build installs from,
# not of a local mirror's or wheel folder's files.
PIP_COMPILE := env -u PIP_FIND_LINKS -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL PIP_CONFIG_FILE=/dev/null \
	$(VENV)/bin/pip-compile --quiet --generate-hashes --strip-extras --no-emit-index-url --no-emit-find-links $(LOCK_ARGS)
lock: $(VENV)/.installed
	$(PIP_COMPILE) -o requirements.txt requirements.in
	$(PIP_COMPILE) --allow-unsafe -o requirements-dev.txt requirements-dev.in

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# checkov's pins conflict with the app's (infra/checkov/requirements.txt): its own venv, from PyPI, pinned.
$(CHECKOV_VENV)/.installed: infra/checkov/requirements.txt infra/checkov/constraints.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install $(PIP_FLAGS) -r infra/checkov/requirements.txt -c infra/checkov/constraints.txt
	touch $@

# infra/*.bicep scanned offline (--skip-download: no call home); the gate fails on a failed check and on a file checkov
# could not parse (checkov exits 0 then). Skipped checks are in the Bicep, each with its reason.
checkov: $(CHECKOV_VENV)/.installed $(VENV)/.installed
	@mkdir -p .local
	$(CHECKOV_VENV)/bin/checkov -d infra --framework bicep --skip-download --quiet -o json > .local/checkov.json || true
	$(PY) -m tests.unit.infra.checkov_gate .local/checkov.json

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

types: $(VENV)/.installed
	$(VENV)/bin/mypy

# pytest-xdist: most integration time is waiting on subprocesses (Azurite, the sandbox, devhost's workers), so 4
# workers pay even on 2 cores. Each worker is a pytest session of its own, with its own Azurite and sandbox on
# OS-picked ports; --dist loadfile keeps a module's tests (and its module-scoped world) on one worker.
# PYTEST_WORKERS=0 runs in one process (e.g. to debug with -s or --pdb).
PYTEST_WORKERS ?= 4
pytest: deps
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

format: $(VENV)/.installed
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

demo: deps
	$(PY) -m demo $(DEMO_ARGS)

bench: deps
	$(PY) -m bench all

# The chaos soak: 5,000 jobs, 3 workers, faults and outages, minutes; its last stdout line is the JSON figures
# (SOAK_ARGS="--short" runs the 60-second version `make test` runs; --keep DIR keeps logs and Azurite data).
soak: deps
	$(PY) -m soak $(SOAK_ARGS)

# The local world in one command: Azurite, the sandbox and devhost on function_app.py (Ctrl-C stops all).
dev: deps
	$(PY) -m localworld.dev $(DEV_ARGS)

# Stable ports and CA folder: the values in local.settings.json.example and the ones `make dev` uses.
sandbox: deps
	$(PY) -m sandbox --write-env .local/sandbox.env --work-dir .local/sandbox --port-base 7443

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache .local
