# One-command set-up: `make demo` and `make test` create .venv and install everything first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export NO_ALBUMENTATIONS_UPDATE := 1
export RAY_TRAIN_V2_ENABLED := 1

.PHONY: install demo test lint test-fast bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt scripts/system-deps.sh
	@bash scripts/system-deps.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

demo: install
	$(BIN)/visionflow run examples/digits_classification.yaml

# pytest-xdist: one worker per core (at most 4); the tests that start Ray share one worker
# (tests/conftest.py), so one local Ray runs at a time
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ $$n -gt 4 ] && n=4; echo $$n)

test: install lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python scripts/lint_imports.py

test-fast: install
	$(BIN)/python -m pytest -m "not slow and not ray"

clean:
	rm -rf $(VENV) build dist *.egg-info runs
