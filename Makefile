# Two commands from a fresh clone: `make run` and `make test` (only Python 3.11+ and make needed).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARGS ?=
PYTEST_ARGS ?=

.PHONY: run test sysdeps lint format bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "mailpit_py needs Python 3.11 or newer: run make PYTHON=python3.11 (or newer)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# The stamps make re-runs instant and reinstall when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $@

run: $(VENV)/.installed
	$(BIN)/mailpit-py $(ARGS)

test: $(VENV)/.installed-test sysdeps
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

# Real peers the tests drive, from Debian: Chromium for the browser tests (`playwright install`
# cannot download browsers here), swaks as a second SMTP client, spamd for the SpamAssassin check,
# mbsync (isync) as a mail client that syncs folders over IMAP.
DEBIAN_TEST_PACKAGES := chromium swaks spamassassin spamd isync
DEBIAN_TEST_COMMANDS := /usr/bin/chromium /usr/bin/swaks /usr/sbin/spamd /usr/bin/mbsync

sysdeps:
	@missing=""; for c in $(DEBIAN_TEST_COMMANDS); do [ -x $$c ] || missing="$$missing $$c"; done; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian packages for the tests: $(DEBIAN_TEST_PACKAGES)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEBIAN_TEST_PACKAGES); \
	else \
		echo "note:$$missing missing, so the tests that need them will skip;" \
		     "install them with: sudo apt-get install $(DEBIAN_TEST_PACKAGES)"; \
	fi

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-test
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The quick benchmarks (a few minutes); each prints its figures, and the target fails if one did.
QUICK_BENCHES := "ingest.py -n 1000 --repeat 1" "scale.py -n 20000" "bigmail.py" \
	"livepath.py --seconds 5 --repeat 1" "soak.py --minutes 1" "compress.py --rounds 1"

bench: $(VENV)/.installed
	@status=0; for b in $(QUICK_BENCHES); do \
		echo "== bench/$$b"; $(BIN)/python bench/$$b || status=1; \
	done; exit $$status

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
