# istore: `make run` serves on 127.0.0.1:8592, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8592

.PHONY: run test serve-prod migrate venv clean

# Rebuild the virtualenv when requirements.txt is newer than the last install.
$(VENV)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

venv: $(VENV)/.installed

migrate: venv
	DJANGO_DEBUG=$${DJANGO_DEBUG:-true} $(BIN)/python manage.py migrate --noinput

# Local development: SQLite and local disk under ./var, anonymous writes from
# loopback clients only.
run: migrate
	DJANGO_DEBUG=$${DJANGO_DEBUG:-true} ISTORE_ALLOW_ANONYMOUS_WRITES=$${ISTORE_ALLOW_ANONYMOUS_WRITES:-true} \
	$(BIN)/gunicorn istore_site.wsgi --config gunicorn.conf.py --bind $(HOST):$(PORT) --reload

# The whole test suite (DATABASE_URL selects PostgreSQL; SQLite otherwise).
test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Production-like: settings from the environment (see docs/deploy.md).
serve-prod: venv
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput
	$(BIN)/gunicorn istore_site.wsgi --config gunicorn.conf.py

clean:
	rm -rf $(VENV) var
