# The two commands of the README: `make demo` and `make test`. Both create the virtual
# environment .venv inside the checkout and install the project into it first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: demo test install clean fuzz browser

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,onnx,serve,ray]'
	touch $@

install: $(VENV)/.installed

# Debian's Chromium for the browser tests (the server's web page, the comparison report),
# driven by Playwright with executable_path=/usr/bin/chromium (Playwright downloads no
# browser). Installed with apt-get where missing and running as root; otherwise the browser
# tests are skipped with a reason, except under CI=true, where they fail.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "make test: no chromium; the browser tests need Debian's chromium (apt-get install chromium)" >&2; fi; }

demo: $(VENV)/.installed
	$(PY) tools/demo.py --workdir work/demo

# Lint (ruff), the import direction (import-linter, contracts in setup.cfg), then pytest.
test: $(VENV)/.installed browser
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest -n 2 --dist loadgroup --durations=15 $(PYTEST_ARGS)

# Longer fuzzing runs (Hypothesis): the PyTorch checkpoint reader (FUZZ_EXAMPLES=N examples
# per test, default 1500; CI runs a seeded few hundred in make test) and every option of
# every tool (TOOL_FUZZ_EXAMPLES=N random examples per option, default 60; make test runs 4
# derandomized ones).
$(VENV)/.fuzz-installed: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[fuzz]'
	touch $@

fuzz: $(VENV)/.fuzz-installed
	$(PY) -m pytest -q -s -p no:cacheprovider tests/fuzz/fuzz_checkpoint_reader.py
	TOOL_FUZZ_EXAMPLES=$${TOOL_FUZZ_EXAMPLES:-60} $(PY) -m pytest -q -n 2 -p no:cacheprovider \
		tests/tools/test_every_option.py

clean:
	rm -rf $(VENV) work *.egg-info
