# Two commands from a fresh clone: `make run` and `make test` (only Python 3.11+ and make needed).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARGS ?=
PYTEST_ARGS ?=

.PHONY: run test sysdeps test-deps lint format bench clean

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

# Four workers on a 2-CPU machine: most tests wait on servers, sockets and browsers, so two
# more workers than cores take the suite from 10 minutes to 5.
test: $(VENV)/.installed-test sysdeps test-deps
	$(BIN)/python -m pytest -n 4 $(PYTEST_ARGS)

# Test tools from the npm registry, pinned and checked against the registry's sha512, kept in the
# git-ignored .test-deps/: axe-core for the accessibility tests (skipped without it, failed
# under CI=true).
test-deps: $(BIN)/python
	@$(BIN)/python tests/axe_fetch.py

# Real peers the tests drive, from Debian: Chromium for the browser tests (`playwright install`
# cannot download browsers here), swaks as a second SMTP client, spamd for the SpamAssassin check,
# mbsync (isync) as a mail client that syncs folders over IMAP, curl as a POP3 and IMAP client,
# the PostgreSQL server (tests/pgserver.py starts its own cluster from its binaries; whichever
# version Debian has, so its initdb is checked as a glob), and HAProxy, run with
# deploy/haproxy.cfg in front of two instances.
# Only the packages whose command is missing are installed, and the line before says which.
DEBIAN_TEST_PACKAGES := chromium swaks spamassassin spamd isync curl postgresql haproxy
DEBIAN_TEST_COMMANDS := /usr/bin/chromium /usr/bin/swaks /usr/sbin/spamd /usr/bin/mbsync /usr/bin/curl \
	/usr/lib/postgresql/*/bin/initdb /usr/sbin/haproxy

sysdeps:
	@pkgs=""; tests=""; \
	for c in $(DEBIAN_TEST_COMMANDS); do \
		[ -x $$c ] && continue; \
		case $$c in \
			*/chromium) p="chromium"; t="the browser tests";; \
			*/swaks) p="swaks"; t="the SMTP-client tests (swaks)";; \
			*/spamd) p="spamassassin spamd"; t="the spam-check tests (spamd)";; \
			*/mbsync) p="isync"; t="the IMAP-sync tests (mbsync)";; \
			*/curl) p="curl"; t="the POP3 and IMAP tests that use curl";; \
			*/initdb) p="postgresql"; t="the PostgreSQL tests (a server they start)";; \
			*/haproxy) p="haproxy"; t="the load-balancer test of deploy/haproxy.cfg";; \
		esac; \
		pkgs="$$pkgs $$p"; tests="$$tests\n  $$t: $$c is missing"; \
	done; \
	if [ -z "$$pkgs" ]; then \
		echo "make test: the Debian packages the tests use are installed ($(DEBIAN_TEST_PACKAGES))"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "make test: installing the missing Debian packages system-wide for the browser, SMTP-client, IMAP-sync, spam-check, curl, PostgreSQL and load-balancer tests:$$pkgs"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$pkgs; \
	else \
		why="not root"; command -v apt-get >/dev/null 2>&1 || why="no apt-get"; \
		printf "make test: $$why, so no Debian packages are installed and these tests will skip:$$tests\n"; \
		echo "  to run them, install the packages with: sudo apt-get install -y$$pkgs"; \
		echo "  (under CI=true they fail instead of skipping)"; \
	fi

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(VENV)/.installed-test
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The quick benchmarks (a few minutes); each prints its figures, and the target fails if one did.
QUICK_BENCHES := "ingest.py -n 1000 --repeat 1" "scale.py -n 20000" "bigmail.py" \
	"livepath.py --seconds 5 --repeat 1" "soak.py --minutes 1" "compress.py --rounds 1" \
	"parse.py"

bench: $(VENV)/.installed
	@status=0; for b in $(QUICK_BENCHES); do \
		echo "== bench/$$b"; $(BIN)/python bench/$$b || status=1; \
	done; exit $$status

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .mypy_cache
