# Two commands for a newcomer:  `make demo`  and  `make test`.
# Both create .venv and install the pinned requirements themselves.

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

.PHONY: install browser demo test test-fast lint run worker beat consumer bench clean

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements.txt
	touch $@

install: $(VENV)/.installed

$(SECRET_KEY_FILE):
	@mkdir -p $(@D)
	@umask 077; $(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))' > $@.tmp && mv $@.tmp $@

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

demo: install $(SECRET_KEY_FILE)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v0
	$(PY) manage.py seed_movielens --orgs $(DEMO_ORGS) --limit $(DEMO_LIMIT) --recent-days $(DEMO_RECENT_DAYS)
	$(PY) manage.py rollup --all-days
	$(PY) manage.py detect_anomalies --days 30
	$(PY) scripts/run_demo.py --port $(DEMO_PORT)

test: install browser
	$(PY) -m pytest

test-fast: install
	$(PY) -m pytest -m "not browser"

lint: install $(SECRET_KEY_FILE)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run

run: install $(SECRET_KEY_FILE)
	$(PY) manage.py migrate --noinput
	$(VENV)/bin/gunicorn usage_platform.wsgi --bind 127.0.0.1:$(DEMO_PORT) --workers 3

worker: install $(SECRET_KEY_FILE)
	$(VENV)/bin/celery -A usage_platform worker --loglevel INFO

beat: install $(SECRET_KEY_FILE)
	$(VENV)/bin/celery -A usage_platform beat --loglevel INFO

consumer: install $(SECRET_KEY_FILE)
	$(PY) manage.py consume_events

clean:
	rm -rf $(VENV) var staticfiles db.sqlite3 db.sqlite3-wal db.sqlite3-shm
