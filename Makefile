# Two commands for a newcomer:  `make demo`  and  `make test`.
# Both create .venv and install the pinned requirements themselves: `make demo` (and run,
# worker, beat, consumer) the runtime ones (requirements.txt), `make test` and `make lint`
# the runtime ones plus tests and tooling (requirements-dev.txt).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
export HF_HUB_OFFLINE ?= 1
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

DEMO_PORT ?= 8000
DEMO_ORGS ?= 3
DEMO_LIMIT ?= 30000
DEMO_RECENT_DAYS ?= 45

# Settings refuse to start without SECRET_KEY when DEBUG is off. The targets that run the
# platform use a random key made once in var/secret_key (readable only by you), unless
# SECRET_KEY is already set in the environment or .env. Tests make their own.
SECRET_KEY_FILE ?= $(CURDIR)/var/secret_key
export SECRET_KEY_FILE

.PHONY: install install-dev movielens browser demo test test-fast lint run worker beat consumer bench clean

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

$(SECRET_KEY_FILE):
	@mkdir -p $(@D)
	@umask 077; $(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))' > $@.tmp && mv $@.tmp $@

# The real MovieLens 100k ships inside the recbole wheel; the seeder reads its files (no
# torch, no recbole code). Never a requirement: the GroupLens licence forbids redistributing
# the data, so it is fetched here when the package index answers, and the seeder falls back
# to its synthetic generator when it does not.
# Unpacked under var/recbole (`--target`), not into the virtualenv: pip would then report
# recbole's missing torch on every later install.
movielens: install
	@test -f var/recbole/recbole/dataset_example/ml-100k/ml-100k.inter \
	  || $(PY) -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('recbole') is None)" \
	  || $(PIP) install --quiet --no-deps --retries 1 --timeout 10 --target var/recbole recbole==1.2.1 >/dev/null 2>&1 \
	  || echo "MovieLens 100k: recbole==1.2.1 could not be fetched (offline?); the demo data will be synthetic."

# Browser tests drive Debian's Chromium; never a browser downloaded by a tool.
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "Installing Debian's chromium for the browser tests…"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else \
	    echo "Chromium is missing: run 'sudo apt-get install -y chromium' (browser tests need root to install it)."; \
	    exit 1; \
	  fi; \
	fi

demo: install movielens $(SECRET_KEY_FILE)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v0
	$(PY) manage.py seed_movielens --orgs $(DEMO_ORGS) --limit $(DEMO_LIMIT) --recent-days $(DEMO_RECENT_DAYS)
	$(PY) manage.py rollup --all-days --no-after-rollup
	$(PY) manage.py detect_anomalies --days 30
	$(PY) scripts/run_demo.py --port $(DEMO_PORT)

# PYTEST_ARGS: extra pytest arguments (CI passes --split to run part of the suite).
PYTEST_ARGS ?=

test: install-dev browser
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: install-dev
	$(PY) -m pytest -m "not browser"

lint: install-dev $(SECRET_KEY_FILE)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) scripts/import_cycles.py
	$(VENV)/bin/mypy
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run

run: install $(SECRET_KEY_FILE)
	$(PY) manage.py migrate --noinput
	$(VENV)/bin/gunicorn --config usage_platform/gunicorn.conf.py --bind 127.0.0.1:$(DEMO_PORT) --workers 3 usage_platform.wsgi

worker: install $(SECRET_KEY_FILE)
	$(VENV)/bin/celery -A usage_platform worker --loglevel INFO

beat: install $(SECRET_KEY_FILE)
	$(VENV)/bin/celery -A usage_platform beat --loglevel INFO

consumer: install $(SECRET_KEY_FILE)
	$(PY) manage.py consume_events

clean:
	rm -rf $(VENV) var staticfiles db.sqlite3 db.sqlite3-wal db.sqlite3-shm
