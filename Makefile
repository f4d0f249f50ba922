# istore. `make run` serves on http://$(ADDRESS):$(PORT) (127.0.0.1:8592), `make test` runs the whole suite.
# Variables (make VAR=value, or from the environment): PYTHON, ADDRESS, PORT, PYTEST_ARGS, NAME.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ADDRESS ?= 127.0.0.1
PORT ?= 8592
# The development settings `make run` uses, shared by the targets that manage its store.
DEV := DJANGO_DEBUG=$${DJANGO_DEBUG:-true}

.PHONY: run test serve-prod migrate venv superuser token clean

# Rebuild the virtualenv when requirements.txt is newer than the last install.
$(VENV)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

venv: $(VENV)/.installed

migrate: venv
	@$(DEV) $(BIN)/python manage.py migrate --noinput -v 0

# Local development: SQLite and local disk under ./var, anonymous writes from
# loopback clients only, the S3 protocol on 127.0.0.1:9000, features of every
# picture computed in the background.
run: migrate
	$(DEV) ISTORE_ALLOW_ANONYMOUS_WRITES=$${ISTORE_ALLOW_ANONYMOUS_WRITES:-true} \
	ISTORE_FEATURES=$${ISTORE_FEATURES:-true} \
	ISTORE_S3_BIND=$${ISTORE_S3_BIND-127.0.0.1:9000} \
	$(BIN)/gunicorn istore_site.wsgi --config gunicorn.conf.py --bind $(ADDRESS):$(PORT) --reload

# A user for /_admin/ in `make run`'s store (asks for a name and a password).
superuser: migrate
	$(DEV) $(BIN)/python manage.py createsuperuser

# The API token of the user NAME in `make run`'s store (made if it has none), printed alone.
token: migrate
	@test -n "$(NAME)" || { echo "make token NAME=<user>: name the user" >&2; exit 2; }
	@out=$$($(DEV) $(BIN)/python manage.py drf_create_token "$(NAME)") && \
	echo "$$out" | sed -n 's/^Generated token \([0-9a-f]*\) .*/\1/p'

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
